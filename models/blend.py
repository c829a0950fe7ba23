"""How much the fraud score believes the detector, and how much the classifier.

The fraud score has two sources: an anomaly detector that works from the
first purchase but knows nothing of fraud, and a classifier that learns fraud
from outcomes arriving hours late and knows more with every one of them.
``FraudBlend`` learns how to combine them from those same outcomes: a
logistic regression on two log-odds, the detector's (standardised over
recent purchases) and the classifier's, class-weighted so that the rare
fraud counts as much as everything else.

* Before it has seen ``min_positives`` frauds with a classifier probability,
  the score is the detector's alone, through a fixed prior
  (``sigmoid(prior_weight * z - prior_offset)``: a typical purchase scores
  ~0.05, one ``prior_offset / prior_weight`` standard deviations above the
  typical 0.5). It ranks exactly as the detector does, on the scale the
  learnt blend will use, so scores given before and after the first outcomes
  can be ranked together (and alerted on with one rolling threshold).
* Then its weights are refitted on what it kept (every fraud, up to
  ``max_positives``, and the latest ``max_negatives`` good purchases) each
  time a fraud arrives and every ``refit_every`` outcomes: three
  parameters, fitted exactly (scikit-learn, L2 strength ``1 / C``) rather
  than stepped by SGD, whose steps on a 0.2 % class either crawl or lurch.
  Whichever part ranks better gets the weight: the detector's ranking while
  outcomes are few, the classifier's once it knows more.

Measured while choosing (card scenario, ``shop/cards.py``, seeds 42/7/1,
100k purchases, outcomes 6 h late; whole-stream ROC AUC / AP): the former
fixed mean of probability and anomaly .929/.585, .913/.545 (seeds 42, 1);
the classifier alone .925/.665, .918/.631; a blend stepped by SGD, balanced
weights, .915/.214; refitted on its buffer .944/.653, .928/.537; the same
in standardised detector log-odds with this prior (and no scores from a
detector that has learnt nothing) .979/.742, .971/.592, .971/.682; with
``C=0.1`` and a slower classifier (Adam 0.005) .979/.763, .977/.713,
.976/.732.

>>> blend = FraudBlend(min_positives=2, refit_every=50)
>>> round(blend.predict_proba_one({"detector": 0.0, "classifier": -6.0}), 3)  # prior: a typical purchase
0.047
>>> blend.predict_proba_one({"detector": 4.0}) > blend.predict_proba_one({"detector": 2.0})
True
>>> import random
>>> rng = random.Random(0)
>>> for i in range(3000):  # the classifier knows fraud; the detector is noise here
...     fraud = i % 100 == 0
...     blend.learn_one({"detector": rng.gauss(0, 1), "classifier": rng.gauss(3 if fraud else -3, 1)}, fraud)
>>> w = blend.weights()
>>> w["classifier"] > 1.0 > abs(w["detector"])
True
>>> blend.predict_proba_one({"detector": 0.0, "classifier": 3.0}) > 0.9 > 0.1 > blend.predict_proba_one({"detector": 3.0, "classifier": -3.0})
True
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

DETECTOR, CLASSIFIER = "detector", "classifier"


def logit(p: float, eps: float = 1e-6) -> float:
    """Log-odds of a probability, kept finite."""
    p = min(max(p, eps), 1.0 - eps)
    return math.log(p / (1.0 - p))


def sigmoid(s: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(s, 35.0), -35.0)))


@dataclass
class FraudBlend:
    """P(fraud) on a class-balanced scale from the detector's and the classifier's log-odds."""

    prior_weight: float = 1.5
    prior_offset: float = 3.0
    min_positives: int = 5
    max_positives: int = 500
    max_negatives: int = 5000
    refit_every: int = 500
    C: float = 0.1
    positives: deque = field(default_factory=deque)
    negatives: deque = field(default_factory=deque)
    coef: tuple[float, float, float] | None = None  # (intercept, detector, classifier) once fitted
    since_fit: int = 0
    frauds_seen: int = 0
    fits: int = 0  # how many times the weights changed (scores before and after differ in scale)

    def __post_init__(self) -> None:
        self.positives = deque(self.positives, maxlen=self.max_positives)
        self.negatives = deque(self.negatives, maxlen=self.max_negatives)

    def predict_proba_one(self, x: dict[str, float]) -> float:
        """``x``: ``detector`` (standardised log-odds) and, once it exists, ``classifier`` (log-odds)."""
        z = x[DETECTOR]
        if self.coef is None or x.get(CLASSIFIER) is None:
            return sigmoid(self.prior_weight * z - self.prior_offset)
        b, w_detector, w_classifier = self.coef
        return sigmoid(b + w_detector * z + w_classifier * x[CLASSIFIER])

    def learn_one(self, x: dict[str, float], fraud: bool) -> None:
        """An outcome, with both log-odds as they were for that purchase before it was known."""
        (self.positives if fraud else self.negatives).append((x[DETECTOR], x[CLASSIFIER]))
        self.since_fit += 1
        self.frauds_seen += bool(fraud)
        if len(self.positives) >= self.min_positives and self.negatives and (
            fraud or self.since_fit >= self.refit_every
        ):
            self._fit()

    def _fit(self) -> None:
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        self.since_fit = 0
        self.fits += 1
        xs = np.array(list(self.positives) + list(self.negatives))
        ys = np.r_[np.ones(len(self.positives)), np.zeros(len(self.negatives))]
        mean, std = xs.mean(axis=0), xs.std(axis=0) + 1e-9
        model = LogisticRegression(C=self.C, class_weight="balanced").fit((xs - mean) / std, ys)
        w = model.coef_[0] / std
        self.coef = (float(model.intercept_[0] - (w * mean).sum()), float(w[0]), float(w[1]))

    def weights(self) -> dict[str, float | int | None]:
        """The weights in use (the prior's until fitted) and how many outcomes they rest on."""
        if self.coef is None:
            return {"intercept": -self.prior_offset, DETECTOR: self.prior_weight, CLASSIFIER: 0.0,
                    "fitted": False, "positives": len(self.positives), "negatives": len(self.negatives)}
        b, w_detector, w_classifier = self.coef
        return {"intercept": round(b, 4), DETECTOR: round(w_detector, 4),
                CLASSIFIER: round(w_classifier, 4), "fitted": True,
                "positives": len(self.positives), "negatives": len(self.negatives)}
