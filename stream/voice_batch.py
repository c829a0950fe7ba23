"""A batch's reviews and messages on the live path (and in tests' Processors).

``Voice.apply`` runs after the batch's clicks, views and purchases, so a
customer's context is as of the batch. Per review: sentiment scored, then
its rating learnt; the item's satisfaction moves (``stream/satisfaction.py``,
``item_satisfaction_drop``); the user's latest sentiment is kept. Per
message: intent and sentiment, then the agent's label learnt; a ``service``
record with priority, context and the FAQ's suggested answer. A negative
text from a customer worth keeping (revenue at least
``SHOPSTREAM_RETENTION_MIN_REVENUE``) raises ``unhappy_customer``, once per text.

The text models live in the worker that runs the batch (each worker learns
from the texts of its partitions; ``stream/text_store.py`` saves them to
Redis and a starting worker loads them): they are not in the learn agent's
snapshot yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from stream import satisfaction
from stream.config import Settings
from stream.faq import ROUTE, Faq, Suggestion, load_faq
from stream.outputs import Alert, Message, Reason
from stream.text_events import CustomerMessage, Review, TextEvent
from stream.voice import (
    NEGATIVE_BELOW, RECENT_TEXTS, SEEN_IDS, TEXT_ITEMS, ScoredText, ServiceRecord, TextModels, VoiceDocs,
    new_user_voice,
)

if TYPE_CHECKING:
    from models.profile import UserProfile
    from stream.alerts import Alerts
    from stream.learner import UserModels
    from stream.state import BatchView

HIGH, NORMAL = 0.6, 0.3  # priority score from which a message is high / normal


@dataclass
class Voice:
    settings: Settings
    models: TextModels = field(default_factory=TextModels)
    faq: Faq | None = None
    _scored: list | None = field(default=None, repr=False)

    @classmethod
    def for_settings(cls, settings: Settings) -> "Voice":
        return cls(settings, faq=load_faq(settings.faq) if settings.faq else None)

    def apply(self, texts: Sequence[tuple[TextEvent, Message]], view: "BatchView", docs: VoiceDocs,
              alerts_out: list[Alert], service_out: list[ServiceRecord], alerts: "Alerts",
              models: "UserModels", scored_out: list[tuple[TextEvent, ScoredText]] | None = None,
              ) -> tuple[int, int]:
        """(texts applied, repeats dropped); offsets of the texts into the view;
        each text's scores (given before it was learnt) into ``scored_out``."""
        self._scored = scored_out
        applied = repeats = 0
        for text, message in texts:
            tp = (message.topic, message.partition)
            if message.offset <= view.offsets.get(tp, -1):
                continue
            if message.offset > view.new_offsets.get(tp, -1):
                view.new_offsets[tp] = message.offset
            user = docs.users.setdefault(text.user_id, new_user_voice())
            if text.event_id in user["ids"]:
                repeats += 1
                continue
            user["ids"] = (user["ids"] + [text.event_id])[-SEEN_IDS:]
            profile = view.profiles.get(text.user_id) or docs.profiles.get(text.user_id)
            if isinstance(text, Review):
                alerts_out += self._review(text, user, docs, profile, alerts, models)
            else:
                record, alert = self._message(text, user, profile, alerts, models)
                service_out.append(record)
                alerts_out += alert
            self._keep_text(docs, text)
            docs.dirty_users.add(text.user_id)
            applied += 1
        return applied, repeats

    def _keep_text(self, docs: VoiceDocs, text: TextEvent) -> None:
        where = text.item_id if isinstance(text, Review) else text.channel
        kind = "review" if isinstance(text, Review) else "message"
        kept = [t for t in docs.texts.get(text.user_id, []) if t[0] >= text.ts - self.settings.text_ttl_s]
        docs.texts[text.user_id] = (kept + [[text.ts, kind, text.event_id, where, text.text]])[-RECENT_TEXTS:]

    def _review(self, review: Review, user: dict, docs: VoiceDocs, profile: "UserProfile | None",
                alerts: "Alerts", models: "UserModels") -> list[Alert]:
        scored = self.models.on_review(review)
        if self._scored is not None:
            self._scored.append((review, scored))
        user["sentiment"], user["ts"] = scored.positive, review.ts
        if review.item_id not in user["items"]:
            user["items"] = (user["items"] + [review.item_id])[-TEXT_ITEMS:]
        negative = _negative(review.rating, scored.positive)
        positive = (review.rating >= 4) if review.rating is not None else (
            scored.positive is not None and scored.positive >= 0.5)
        out: list[Alert] = []
        item = docs.items.setdefault(review.item_id, satisfaction.new_item())
        satisfaction.prune_text(item, review.ts, self.settings.text_ttl_s)
        if review.rating is not None or scored.positive is not None:
            terms = self.models.sentiment.negative_terms(scored.terms) if negative else []
            snippet = (review.user_id, review.review_id, review.text) if negative else None
            drop = satisfaction.add_review(item, review.ts, positive, review.rating, terms, snippet)
            docs.dirty_items.add(review.item_id)
            if drop is not None:
                out.append(_drop_alert(review, drop))
        if negative and profile is not None:
            out += self._unhappy(review.review_id, review.ts, profile, scored.positive, review.rating,
                                 alerts, models, review.item_id)
        return out

    def _message(self, message: CustomerMessage, user: dict, profile: "UserProfile | None",
                 alerts: "Alerts", models: "UserModels") -> tuple[ServiceRecord, list[Alert]]:
        scored = self.models.on_message(message)
        if self._scored is not None:
            self._scored.append((message, scored))
        if scored.positive is not None:
            user["sentiment"], user["ts"] = scored.positive, message.ts
        intent = self.models.known_intent(scored)
        suggestion = self.faq.suggest(message.text, intent) if self.faq else Suggestion(ROUTE)
        value, risk, context = _context(profile, message.ts, alerts, models)
        negativity = 0.0 if scored.positive is None else 1.0 - scored.positive
        worth = min(1.0, value / max(self.settings.retention_min_revenue, 1e-9))
        score = 0.4 * worth + 0.3 * risk + 0.3 * negativity
        record = ServiceRecord(
            message.message_id, message.user_id, message.ts, message.channel, message.text, intent,
            scored.confidence, message.intent, scored.positive,
            "high" if score >= HIGH else "normal" if score >= NORMAL else "low", score, context,
            suggestion.to_dict(),
        )
        out: list[Alert] = []
        if profile is not None and _negative(None, scored.positive):
            out = self._unhappy(message.message_id, message.ts, profile, scored.positive, None,
                                alerts, models, None)
        return record, out

    def _unhappy(self, text_id: str, ts: float, profile: "UserProfile", positive: float | None,
                 rating: float | None, alerts: "Alerts", models: "UserModels",
                 item_id: str | None) -> list[Alert]:
        minimum = self.settings.retention_min_revenue
        if profile.revenue < minimum:
            return []
        risk = alerts.churn_risk(profile, ts)
        reasons = [Reason("sentiment", positive, NEGATIVE_BELOW), Reason("revenue", profile.revenue, minimum),
                   Reason("churn_risk", risk)]
        if rating is not None:
            reasons.insert(1, Reason("rating", rating))
        if item_id is not None:
            reasons.append(Reason("item_id", item_id))
        name = models.segment_name(profile.segment) if profile.segment is not None else None
        score = 1.0 - positive if positive is not None else (5.0 - (rating or 1.0)) / 4.0
        return [Alert("unhappy_customer", profile.user_id, text_id, ts, score, NEGATIVE_BELOW, reasons,
                      profile.segment, name)]


def _negative(rating: float | None, positive: float | None) -> bool:
    if rating is not None:
        return rating <= 2
    return positive is not None and positive < NEGATIVE_BELOW


def _drop_alert(review: Review, drop: dict) -> Alert:
    reasons = [Reason("item_id", review.item_id),
               Reason("positive_share", drop["positive_share"], drop["normal"]),
               Reason("drop", drop["drop"], satisfaction.DROP),
               Reason("negative_terms", ", ".join(drop["negative_terms"]))]
    reasons += [Reason(f"snippet_{i + 1}", s) for i, s in enumerate(drop["snippets"])]
    return Alert("item_satisfaction_drop", review.user_id, review.review_id, review.ts,
                 drop["drop"], satisfaction.DROP, reasons, key=f"{review.item_id}:{review.review_id}")


def _context(profile: "UserProfile | None", ts: float, alerts: "Alerts",
             models: "UserModels") -> tuple[float, float, dict]:
    """(revenue, churn risk, the customer's context for the service record)."""
    if profile is None:
        return 0.0, 0.0, {"known": False}
    risk = alerts.churn_risk(profile, ts)
    segment = profile.segment
    return profile.revenue, risk, {
        "known": True, "revenue": round(profile.revenue, 2), "orders": profile.features.orders,
        "recent_orders": [{"ts": p[0], "item_id": p[1], "order_id": p[2], "amount": round(p[3], 2)}
                          for p in reversed(profile.recent_purchases[-3:])],
        "recent_items": list(reversed(profile.recent[-5:])), "segment": segment,
        "segment_name": models.segment_name(segment) if segment is not None else None,
        "churn_risk": round(risk, 4),
    }


