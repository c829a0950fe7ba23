"""The text models a worker and replay share: each text scored, then learnt.

``TextModels.on_review`` scores a review's sentiment *before* learning its
rating, ``TextModels.on_message`` gives a message's intent and sentiment
before learning the agent's label (if any): what is scored never saw its own
answer, live as in the backtest. A text is featurised once for both models.

>>> from stream.text_events import Review
>>> models = TextModels(Sentiment(min_seen=1), Intent())
>>> scored = models.on_review(Review("r1", "u1", "i1", 0.0, "物流太慢", rating=1))
>>> scored.positive is None, scored.learnt   # nothing seen before it
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from models.text import UNKNOWN, Intent, Sentiment, rating_label, slots_of
from stream.text_events import CustomerMessage, Review

if TYPE_CHECKING:
    from models.profile import UserProfile


@dataclass(slots=True)
class ScoredText:
    raw_positive: float  # the sentiment score whether or not enough was seen (backtest)
    positive: float | None  # None until the model has seen enough
    learnt: bool  # the text taught a model (a rating not 3, an agent's label)
    intent: str | None = None  # likeliest intent (messages), before the label was learnt
    confidence: float = 0.0
    familiar: float = 0.0  # share of the message's features seen in intent training
    terms: dict[str, int] = field(default_factory=dict)  # the text's terms and slots


@dataclass
class TextModels:
    sentiment: Sentiment = field(default_factory=Sentiment)
    intent: Intent = field(default_factory=Intent)
    learnt: int = 0  # texts learnt so far (a worker saves the models when this moved)

    def __post_init__(self) -> None:
        if self.sentiment.features != self.intent.features:
            raise ValueError("sentiment and intent must share their text features")

    def on_review(self, review: Review) -> ScoredText:
        terms = self.sentiment.features.hashed(review.text)
        x = slots_of(terms)
        raw = self.sentiment.raw_proba_one(x)
        positive = raw if self.sentiment.ready else None
        label = rating_label(review.rating)
        self.sentiment.learn_label(x, label)
        self.learnt += label is not None
        return ScoredText(raw, positive, label is not None, terms=terms)

    def on_message(self, message: CustomerMessage) -> ScoredText:
        x = self.sentiment.features.transform_one(message.text)
        raw = self.sentiment.raw_proba_one(x)
        intent, confidence = self.intent.best_one(x)
        familiar = self.intent.familiar(x)
        if message.intent is not None:
            self.intent.learn_one(x, message.intent)
            self.learnt += 1
        return ScoredText(raw, raw if self.sentiment.ready else None, message.intent is not None,
                          intent, confidence, familiar)

    def known_intent(self, scored: ScoredText) -> str:
        """The intent a person is told: ``unknown`` when unsure or unfamiliar."""
        i = self.intent
        if scored.intent is None or scored.confidence < i.threshold or scored.familiar < i.min_familiar:
            return UNKNOWN
        return scored.intent


# -- the live path: what a batch's texts change and publish ---------------------

NEGATIVE_BELOW = 0.3  # an unrated text is negative when P(positive) is below this
RECENT_TEXTS = 10  # a user's texts kept (within the text retention)
SEEN_IDS = 64  # a user's latest text ids, to drop repeats
TEXT_ITEMS = 50  # items a user reviewed, remembered for erasure


@dataclass
class VoiceDocs:
    """A batch's view of the voice state: per user their latest sentiment,
    reviewed items and recent text ids (``voice:user:``), their texts
    (``text:``, kept ``SHOPSTREAM_TEXT_TTL_DAYS``), per item its satisfaction
    (``voice:item:``), and the profiles of the texts' users (read only)."""

    users: dict[str, dict] = field(default_factory=dict)
    texts: dict[str, list] = field(default_factory=dict)
    items: dict[str, dict] = field(default_factory=dict)
    profiles: dict[str, "UserProfile"] = field(default_factory=dict)
    dirty_users: set[str] = field(default_factory=set)
    dirty_items: set[str] = field(default_factory=set)
    # Items' documents as read (Redis): the commit writes an item only if it is
    # still so, since an item's reviews come from every worker's partitions.
    items_read: dict[str, bytes | None] = field(default_factory=dict)


def new_user_voice() -> dict:
    return {"sentiment": None, "ts": None, "ids": [], "items": []}


@dataclass(slots=True)
class ServiceRecord:
    """One customer-service message, triaged (the ``service`` topic)."""

    message_id: str
    user_id: str
    ts: float
    channel: str
    text: str
    intent: str
    confidence: float
    labelled_intent: str | None
    sentiment: float | None
    priority: str
    priority_score: float
    customer: dict
    suggestion: dict

    @property
    def service_id(self) -> str:
        return f"service:{self.message_id}"

    def to_dict(self) -> dict:
        return {"service_id": self.service_id, "message_id": self.message_id, "user_id": self.user_id,
                "ts": self.ts, "channel": self.channel, "text": self.text, "intent": self.intent,
                "confidence": round(self.confidence, 4), "labelled_intent": self.labelled_intent,
                "sentiment": None if self.sentiment is None else round(self.sentiment, 4),
                "priority": self.priority, "priority_score": round(self.priority_score, 4),
                "customer": self.customer, "suggestion": self.suggestion}

    def to_json(self) -> bytes:
        import orjson

        return orjson.dumps(self.to_dict())
