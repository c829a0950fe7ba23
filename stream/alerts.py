"""Alerts a person can act on: what the Processor raises, and why.

``Alerts`` turns the state of one user at one moment into alerts, with
reasons a person can read: fraud on a purchase (score at or above the
alert-rate threshold, or a named rule broken), churn risk when a returning
user's silence crosses the line (with a retention offer for a valuable user),
``no_second_visit`` when a customer seen in one session only stays away
longer than new customers who come back usually do (new customers are
treated apart from lapsing regulars), the end of either episode when they
come back, and a cart nudge when a likely
buyer's session goes quiet with a cart and no purchase. It keeps no state of
its own: episodes live in the user's profile (``churn_alerted_at``), so every
worker and replay raise the same churn alerts.
"""

from __future__ import annotations

from models.churn import ChurnRisk
from models.fraud import FraudRules
from models.profile import SESSION_GAP_S, UserProfile
from models.second_visit import SecondVisit
from stream.config import Settings
from stream.events import Event
from stream.learner import UserModels
from stream.outputs import Alert, Reason

DAY_S = 86400.0


class Alerts:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.churn_risk_model = ChurnRisk(
            prior_gap_days=settings.churn_prior_gap_days, threshold=settings.churn_threshold
        )
        self.second_visit_model = SecondVisit(
            return_share=settings.new_return_share, gap_days=settings.new_return_gap_days,
            threshold=settings.churn_threshold,
        )
        self.rules = FraudRules()

    @staticmethod
    def _alert(
        kind: str, profile: UserProfile, models: UserModels, event_id: str | None, ts: float,
        score: float, threshold: float | None, reasons: list[Reason], key: str | None = None,
    ) -> Alert:
        segment = profile.segment
        name = models.segment_name(segment) if segment is not None else None
        return Alert(kind, profile.user_id, event_id, ts, score, threshold, reasons, segment, name, key)

    # -- fraud ----------------------------------------------------------------

    def fraud(
        self, event: Event, profile: UserProfile, x: dict[str, float], score: float,
        models: UserModels,
    ) -> list[Alert]:
        """A fraud alert when the score reaches the alert-rate threshold or a rule breaks."""
        threshold = models.fraud_threshold
        broken = self.rules.check(x)
        if not broken and (threshold is None or score < threshold):
            return []
        usual = x["amount"] / x["amount_vs_usual"] if not x["first_purchase"] else None
        reasons = [Reason(f"rule:{name}", value, limit) for name, value, limit in broken]
        for name, value, mean in models.fraud.unusual(x):
            normal = usual if name == "amount" and usual is not None else mean
            reasons.append(Reason(name, value, normal))
        return [self._alert("fraud", profile, models, event.event_id, event.ts, score, threshold,
                            reasons)]

    # -- churn ----------------------------------------------------------------

    def churn_check_at(self, profile: UserProfile) -> float | None:
        """The event time at which the user's silence makes them a churn risk,
        or, seen in one session only, unlikely to come back (None: already
        raised for this silence)."""
        last, first = profile.last_seen, profile.first_seen
        if profile.churn_alerted_at is not None or last is None or first is None:
            return None
        if profile.sessions <= 1:
            return last + self.second_visit_model.due_after()
        silence = self.churn_risk_model.due_after(profile.sessions - 1, last - first)
        return None if silence is None else last + silence

    def churn_risk(self, profile: UserProfile, now: float) -> float:
        """P(the user has dropped out) as of event time ``now``: BG/NBD's for a
        returning user, P(never coming back) for a user seen once."""
        last, first = profile.last_seen, profile.first_seen
        if last is None or first is None:
            return 0.0
        if profile.sessions <= 1:
            return self.second_visit_model.score_one(now - last)
        return self.churn_risk_model.score_one(profile.sessions - 1, last - first, now - last)

    def churn(self, profile: UserProfile, at: float, models: UserModels) -> list[Alert]:
        """Open a churn episode at event time ``at``: one alert per episode (and a
        retention offer for a valuable user; ``no_second_visit`` instead for a
        user seen once)."""
        last, first = profile.last_seen, profile.first_seen
        assert last is not None and first is not None
        key = f"{profile.user_id}:{last!r}"
        profile.churn_alerted_at = last
        if profile.sessions <= 1:
            return [self._no_second_visit(profile, at, models, key)]
        threshold = self.settings.churn_threshold
        returns, span = profile.sessions - 1, last - first
        f = profile.features
        weeks = max((at - first) / (7 * DAY_S), 1.0)
        reasons = [
            Reason("silence_days", (at - last) / DAY_S,
                   self.churn_risk_model.typical_gap_s(returns, span) / DAY_S),
            Reason("revenue", f.revenue),
            Reason("purchases_per_week", f.purchases / weeks),
            Reason("sessions", float(f.sessions)),
        ]
        score = self.churn_risk_model.score_one(returns, span, at - last)
        out = [self._alert("churn_risk", profile, models, None, at, score, threshold, reasons, key)]
        if f.revenue >= self.settings.retention_min_revenue:
            offer = reasons + [Reason("min_revenue", self.settings.retention_min_revenue)]
            out.append(self._alert("retention_offer", profile, models, None, at, score, threshold,
                                   offer, key))
        return out

    def _no_second_visit(self, profile: UserProfile, at: float, models: UserModels,
                         key: str) -> Alert:
        """A customer seen once, silent for longer than new customers who come
        back usually take: the silence since their visit against the median
        first-to-second gap, and the share of new customers who ever return."""
        last = profile.last_seen
        assert last is not None
        model = self.second_visit_model
        silence = at - last
        reasons = [
            Reason("days_since_first_visit", silence / DAY_S, model.gap_days),
            Reason("new_customers_returned_by_now", model.returned_by(silence)),
            Reason("share_of_new_customers_who_return", model.return_share),
            Reason("revenue", profile.features.revenue),
        ]
        return self._alert("no_second_visit", profile, models, None, at, model.score_one(silence),
                           self.settings.churn_threshold, reasons, key)

    def on_return(self, profile: UserProfile, event: Event, models: UserModels) -> list[Alert]:
        """A returning user ends their churn episode, raising it first if their
        silence crossed the line before any sweep saw it (so that the alerts do
        not depend on where batches begin and end)."""
        out = []
        check = self.churn_check_at(profile)
        if check is not None and check <= event.ts:
            out += self.churn(profile, check, models)
        alerted = profile.churn_alerted_at
        if alerted is not None:
            silence = Reason("silence_days", (event.ts - alerted) / DAY_S)
            out.append(self._alert("churn_recovered", profile, models, event.event_id, event.ts,
                                   0.0, None, [silence]))
            profile.churn_alerted_at = None
        return out

    # -- carts ----------------------------------------------------------------

    def cart_nudge(self, profile: UserProfile, x: dict[str, float], models: UserModels) -> list[Alert]:
        """A session that went quiet with a cart and no purchase, by a likely buyer
        (``x``: the user's features as the session closed)."""
        f = profile.features
        if not f.session_carts or f.session_purchases or not models.propensity.ready:
            return []
        p = models.propensity.predict_one(x)
        threshold = self.settings.nudge_min_propensity
        if p < threshold:
            return []
        last = profile.last_seen
        assert last is not None
        carted = [item for item, _ in profile.carts]
        reasons = [Reason("session_carts", float(f.session_carts)),
                   Reason("carted_items", ", ".join(carted[-5:]))]
        return [self._alert("cart_nudge", profile, models, None, last + SESSION_GAP_S, p, threshold,
                            reasons, key=f"{profile.user_id}:{last!r}")]
