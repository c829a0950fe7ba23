"""The global user models and what trains them: the learn agent's logic.

Ingest workers score users with a snapshot of :class:`UserModels` and emit
:class:`ModelRow` s: an ``example`` (a user's features when scored, with the
propensity given), a ``purchase`` (which turns the user's pending examples
into positives) and a ``user`` row (a user's features at the start of a
session, for K-means). A single :class:`Learner` (the learn agent on the
one-partition ``features`` topic, or replay in-process) resolves labels on
event time, trains, keeps prequential metrics and hands out new snapshots.

Labels are resolved here rather than on the ingest side because a label
needs the user's later events and the passing of event time across the
whole stream; one ordered consumer sees both, and a worker never has to
hold examples for users that a rebalance moves away from it.
"""

from __future__ import annotations

import pickle
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import orjson

from models.alert_rate import AlertRate
from models.calibration import ProbabilityMetrics
from models.fraud import FraudDetector
from models.outcomes import FraudLabels, PendingPurchase
from models.propensity import WINDOW_S, LabelledRow, PendingLabels, PurchasePropensity
from models.segments import UserSegments
from models.uplift import UpliftModel
from stream.config import Settings
from stream.events import Label
from stream.targeting import CANDIDATE, CONVERTED, DECISION, OfferLearner

OFFER_ROWS = (DECISION, CONVERTED, CANDIDATE)

EXAMPLE, PURCHASE, USER, FRAUD, FORGET = "example", "purchase", "user", "fraud", "forget"
# Largest message of model rows: well under the producer's request limit
# (1 MB), which a batch of a few thousand events' rows would pass.
ROWS_MESSAGE_BYTES = 256 * 1024


@dataclass(slots=True)
class ModelRow:
    """``example``: features and propensity given; ``purchase``; ``user``: features
    at a session's close; ``fraud``: a purchase's fraud features, with the score
    (``p``) and anomaly score given, and its ``order_id``; ``forget``: erase
    what the learner holds of this user."""

    kind: str
    user_id: str
    event_id: str
    ts: float
    x: dict[str, float] | None = None
    p: float | None = None
    order_id: str | None = None
    anomaly: float | None = None
    # Offers (stream/targeting.py): ``decision`` (event_id: the action's id,
    # x: the uplift features, p: the predicted uplift), ``converted``,
    # ``candidate`` (p: a scored user's predicted uplift).
    campaign: str | None = None
    treated: bool | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelRow":
        return cls(d["kind"], d["user_id"], d["event_id"], d["ts"], d.get("x"), d.get("p"),
                   d.get("order_id"), d.get("anomaly"), d.get("campaign"), d.get("treated"))


def encode_rows(rows: Sequence[ModelRow], max_bytes: int = ROWS_MESSAGE_BYTES) -> list[bytes]:
    """The rows as JSON arrays of at most ``max_bytes`` each (a single row that
    is larger goes alone), in order: the messages of the ``features`` topic.

    >>> rows = [ModelRow(USER, f"u{i}", f"e{i}", 0.0, {"views": 1.0}) for i in range(3)]
    >>> [len(orjson.loads(m)) for m in encode_rows(rows, max_bytes=300)]
    [2, 1]
    """
    encoded = orjson.dumps(rows)  # orjson writes the rows' dataclass fields
    if len(encoded) <= max_bytes:
        return [encoded]
    # Too large for one message: each row is encoded once more, on its own,
    # and as many as fit go together.
    messages: list[bytes] = []
    part: list[bytes] = []
    size = 2  # of the message with the next row's comma: brackets, rows, commas
    for row in map(orjson.dumps, rows):
        if part and size + len(row) > max_bytes:
            messages.append(b"[" + b",".join(part) + b"]")
            part, size = [], 2
        part.append(row)
        size += len(row) + 1
    messages.append(b"[" + b",".join(part) + b"]")
    return messages


@dataclass
class UserModels:
    """What ingest scores with: a versioned copy of the global models."""

    version: int = 0
    segments: UserSegments = field(default_factory=UserSegments)
    propensity: PurchasePropensity = field(default_factory=PurchasePropensity)
    metrics: dict[str, Any] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    fraud: FraudDetector = field(default_factory=FraudDetector)
    fraud_threshold: float | None = None
    fraud_metrics: dict[str, Any] = field(default_factory=dict)
    # Declared offers (stream/targeting.py): the uplift model and each
    # campaign's threshold of predicted uplift.
    uplift: UpliftModel | None = None
    offer_thresholds: dict[str, tuple[float, float]] = field(default_factory=dict)

    def segment_name(self, segment: int) -> str | None:
        return self.names.get(segment)


@dataclass
class Learner:
    """Resolves labels, trains the global models, keeps prequential metrics."""

    segments: UserSegments = field(default_factory=UserSegments)
    propensity: PurchasePropensity = field(default_factory=PurchasePropensity)
    pending: PendingLabels = field(default_factory=lambda: PendingLabels(window_s=WINDOW_S))
    metrics: ProbabilityMetrics = field(default_factory=ProbabilityMetrics)
    version: int = 0
    updates: int = 0
    watermark: float = 0.0
    timeline: list[dict[str, Any]] = field(default_factory=list)
    fraud: FraudDetector = field(default_factory=FraudDetector)
    alert_rate: AlertRate = field(default_factory=AlertRate)
    fraud_labels: FraudLabels = field(default_factory=FraudLabels)
    fraud_metrics: ProbabilityMetrics = field(default_factory=ProbabilityMetrics)
    # The latest purchases' (anomaly, classifier probability): when the blend's
    # weights change, the alert threshold is taken again over them as the new
    # blend scores them, instead of over scores on the old scale.
    fraud_parts: deque = field(default_factory=deque)
    rated_fits: int = 0
    offers: OfferLearner = field(default_factory=OfferLearner)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A learner pickled before a field existed loads with its default."""
        self.__dict__.update(fraud_parts=deque(), rated_fits=0, offers=OfferLearner())
        self.__dict__.update(state)

    @classmethod
    def for_settings(cls, settings: Settings) -> "Learner":
        return cls(
            alert_rate=AlertRate(rate=settings.fraud_alert_rate),
            fraud_labels=FraudLabels(ttl_s=settings.label_ttl_days * 86400.0),
            offers=OfferLearner.for_settings(settings),
        )

    def learn(self, rows: Iterable[ModelRow]) -> list[LabelledRow]:
        """Learn from rows in arrival order; return the labels resolved."""
        resolved: list[LabelledRow] = []
        for row in rows:
            if row.ts > self.watermark:
                self.watermark = row.ts
            if row.kind == EXAMPLE and row.x is not None:
                self.pending.add(row.user_id, row.event_id, row.ts, row.x, row.p)
            elif row.kind == PURCHASE:
                resolved += self.pending.on_purchase(row.user_id, row.ts)
            elif row.kind == USER and row.x is not None:
                self.segments.learn_one(row.x, key=row.user_id)
                self.updates += 1
            elif row.kind == FORGET:
                self.pending.forget(row.user_id)
                self.segments.forget(row.user_id)
            elif row.kind == FRAUD and row.x is not None:
                self.fraud.learn_one(row.x, row.anomaly)
                score = row.p if row.p is not None else 0.0
                anomaly = row.anomaly or 0.0
                if anomaly > 0.0:  # 0: scored 0.5, undecided, before the detector learnt anything
                    self.alert_rate.update(score)
                    self._keep_parts(anomaly, self.fraud.fraud_probability(row.x))
                outcome = self.fraud_labels.add(
                    PendingPurchase(row.event_id, row.order_id, row.ts, row.x, anomaly, score)
                )
                if outcome is not None:  # its outcome came first
                    self.fraud_metrics.update(outcome, score)
                    self.fraud.learn_label(row.x, anomaly, outcome)
                self.updates += 1
            elif row.kind in OFFER_ROWS:
                self.offers.add(row.kind, row.user_id, row.event_id, row.ts, row.x, row.p,
                                row.campaign, row.treated)
        self.updates += self.offers.resolve(self.watermark)
        self.fraud_labels.expire(self.watermark)
        self._rate_again()
        resolved += self.pending.resolve(self.watermark)
        for label in resolved:
            if label.p is not None:
                self.metrics.update(label.y, label.p)
            self.propensity.learn_one(label.x, label.y)
            self.updates += 1
        return resolved

    def learn_labels(self, labels: Iterable[Label]) -> int:
        """Train the fraud classifier on confirmed outcomes; return the purchases labelled."""
        joined = 0
        for label in labels:
            for purchase in self.fraud_labels.label(label.fraud, label.ts, label.event_id,
                                                    label.order_id):
                self.fraud_metrics.update(label.fraud, purchase.score)
                self.fraud.learn_label(purchase.x, purchase.anomaly, label.fraud)
                joined += 1
                self.updates += 1
        self._rate_again()
        return joined

    def _keep_parts(self, anomaly: float, probability: float | None) -> None:
        self.fraud_parts.append((anomaly, probability))
        while len(self.fraud_parts) > self.alert_rate.window:
            self.fraud_parts.popleft()

    def _rate_again(self) -> None:
        """After the blend's weights changed: the threshold over the latest
        purchases as the blend now scores them."""
        fits = self.fraud.blend.fits
        if fits == self.rated_fits:
            return
        self.rated_fits = fits
        rate = self.alert_rate
        self.alert_rate = AlertRate(rate=rate.rate, window=rate.window, min_scores=rate.min_scores)
        for anomaly, probability in self.fraud_parts:
            self.alert_rate.update(self.fraud.rescore(anomaly, probability))

    def record(self) -> None:
        """Add the current metrics to the timeline (for the report's plots)."""
        point = {"ts": self.watermark, **self.metrics.get(), "sizes": self.segments.sizes}
        self.timeline.append(point)

    def snapshot(self, shared: bool = False) -> UserModels:
        """A new version of the models, independent of further learning; with
        ``shared``, made of the learner's own objects, to be pickled at once
        (a copy costs several times the pickling: the segments' sample)."""
        self.version += 1
        models = UserModels(
            version=self.version,
            segments=self.segments,
            propensity=self.propensity,
            metrics=self.metrics.get(),
            names={p["segment"]: p["name"] for p in self.segments.profiles()},
            fraud=self.fraud,
            fraud_threshold=self.alert_rate.threshold,
            fraud_metrics={"labels": self.fraud_labels.counts(), "prequential": self.fraud_metrics.get()},
            uplift=self.offers.model,
            offer_thresholds=dict(self.offers.thresholds),
        )
        return models if shared else pickle.loads(pickle.dumps(models, protocol=pickle.HIGHEST_PROTOCOL))
