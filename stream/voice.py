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

from models.text import Intent, Sentiment, rating_label
from stream.text_events import CustomerMessage, Review


@dataclass(slots=True)
class ScoredText:
    raw_positive: float  # the sentiment score whether or not enough was seen (backtest)
    positive: float | None  # None until the model has seen enough
    learnt: bool  # the text taught a model (a rating not 3, an agent's label)
    intent: str | None = None  # likeliest intent (messages), before the label was learnt
    confidence: float = 0.0


@dataclass
class TextModels:
    sentiment: Sentiment = field(default_factory=Sentiment)
    intent: Intent = field(default_factory=Intent)

    def __post_init__(self) -> None:
        if self.sentiment.features != self.intent.features:
            raise ValueError("sentiment and intent must share their text features")

    def on_review(self, review: Review) -> ScoredText:
        x = self.sentiment.features.transform_one(review.text)
        raw = self.sentiment.raw_proba_one(x)
        positive = raw if self.sentiment.ready else None
        label = rating_label(review.rating)
        self.sentiment.learn_label(x, label)
        return ScoredText(raw, positive, label is not None)

    def on_message(self, message: CustomerMessage) -> ScoredText:
        x = self.sentiment.features.transform_one(message.text)
        raw = self.sentiment.raw_proba_one(x)
        intent, confidence = self.intent.best_one(x)
        if message.intent is not None:
            self.intent.learn_one(x, message.intent)
        return ScoredText(raw, raw if self.sentiment.ready else None, message.intent is not None,
                          intent, confidence)
