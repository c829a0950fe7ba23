"""Uplift: how much more likely a customer is to act *because* of an offer.

A response model answers "who will buy?", and spends offers on customers
who buy anyway. An uplift model answers "who buys because we asked?":
``P(outcome | x, treated) - P(outcome | x, held out)``, learnt from
customers of both groups of a randomised campaign (the holdout keeps it
unbiased).

``UpliftModel`` is one logistic regression over the customer's features,
a treatment indicator and the features times the treatment (the "single
model with treatment interactions"), learnt online as a Bayesian model:
each weight has a Gaussian prior and every outcome updates mean and
covariance at once (the Laplace / extended-Kalman update of a logistic
likelihood). Interaction weights get a prior ten to a hundred times tighter
than the main effects: how a customer reacts to an offer differs between
customers far less than whether they buy at all, and shrinking the
differences is what keeps the ranking from chasing noise. Unlike SGD, the
update needs no learning rate and is as good after one pass as a batch fit
(river and scikit-learn have no online logistic model with a full
covariance; the matrix is small: twice the features).

Features are a dict of name -> number or string: a string is one-hot
(``"channel": "Web"`` is the feature ``channel=Web``); numbers should be of
order 1 (take logs of money and counts). New names get weights as they
appear, up to ``max_features``; later ones are ignored.

``ResponseModel`` is the same learner without the treatment: P(outcome | x),
the response model uplift is compared with.

>>> model = UpliftModel()
>>> import random
>>> rng = random.Random(1)
>>> for _ in range(3000):
...     kind = rng.choice(["persuadable", "sure thing"])
...     treated = rng.random() < 0.5
...     p = 0.6 if kind == "sure thing" else (0.5 if treated else 0.1)
...     model.learn_one({"kind": kind}, treated, rng.random() < p)
>>> round(model.predict_one({"kind": "persuadable"}), 1), round(model.predict_one({"kind": "sure thing"}), 1)
(0.4, 0.0)
>>> response = ResponseModel()
>>> for _ in range(2000):
...     response.learn_one({"web": 1.0}, rng.random() < 0.8)
...     response.learn_one({"web": 0.0}, rng.random() < 0.2)
>>> round(response.predict_one({"web": 1.0}), 1), round(response.predict_one({"web": 0.0}), 1)
(0.8, 0.2)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Features = dict[str, float | int | str | bool]

INTERCEPT = "(intercept)"
TREATED = "(treated)"


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def encode(x: Features) -> dict[str, float]:
    """Numbers as they are, strings one-hot (``name=value``), bools as 0/1."""
    out: dict[str, float] = {}
    for name, value in x.items():
        if isinstance(value, str):
            out[f"{name}={value}"] = 1.0
        elif value is not None:
            v = float(value)
            if math.isfinite(v):
                out[name] = v
    return out


@dataclass
class BayesLogit:
    """Online Bayesian logistic regression with a full covariance.

    ``prior`` gives a weight's prior variance from its name (grown as names
    appear). Deterministic and picklable."""

    max_features: int = 256
    index: dict[str, int] = field(default_factory=dict)
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cov: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def _grow(self, names: list[str], variances: list[float]) -> None:
        d, k = len(self.index), len(names)
        for i, name in enumerate(names):
            self.index[name] = d + i
        self.mean = np.concatenate([self.mean, np.zeros(k)])
        cov = np.zeros((d + k, d + k))
        cov[:d, :d] = self.cov
        cov[d:, d:] = np.diag(variances)
        self.cov = cov

    def vector(self, x: dict[str, float], prior: Callable[[str], float], grow: bool) -> np.ndarray:
        new = [n for n in x if n not in self.index]
        if grow and new:
            room = self.max_features - len(self.index)
            new = new[: max(room, 0)]
            if new:
                self._grow(new, [prior(n) for n in new])
        v = np.zeros(len(self.index))
        for name, value in x.items():
            i = self.index.get(name)
            if i is not None:
                v[i] = value
        return v

    def proba(self, v: np.ndarray) -> float:
        return _sigmoid(float(self.mean @ v)) if len(v) else 0.5

    def update(self, v: np.ndarray, y: bool) -> float:
        """Learn one outcome; return its log predictive probability before learning it
        (the mean's logit moderated by its variance, MacKay's approximation)."""
        z = float(self.mean @ v)
        cv = self.cov @ v
        q = float(v @ cv)
        moderated = _sigmoid(z / math.sqrt(1.0 + math.pi * q / 8.0))
        log_p = math.log(max(moderated if y else 1.0 - moderated, 1e-12))
        p = _sigmoid(z)
        g = p * (1.0 - p)
        self.mean = self.mean + cv * ((float(y) - p) / (1.0 + g * q))
        self.cov = self.cov - np.outer(cv, cv) * (g / (1.0 + g * q))
        return log_p


@dataclass
class UpliftModel:
    """``predict_one(x)`` is P(outcome | x, treated) - P(outcome | x, held out).

    ``main_variance``: prior variance of the features' own weights and the
    treatment's. How much customers differ in their reaction is not known in
    advance (little in a mass e-mailing, a lot in a shop of persuadables and
    sure things), so the model keeps one learner per interaction prior in
    ``interaction_variances`` and averages their predictions weighted by how
    well each predicted the outcomes so far (its evidence: the sum of the log
    predictive probabilities, a Bayesian model average over the prior).
    ``learnt`` counts outcomes; ``treated_learnt`` those of treated customers."""

    main_variance: float = 0.1
    interaction_variances: tuple[float, ...] = (0.003, 0.03, 0.3)
    intercept_variance: float = 4.0
    max_features: int = 128
    learnt: int = 0
    treated_learnt: int = 0
    members: list[BayesLogit] = field(default_factory=list)
    evidence: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.members:
            # Each feature has a main weight and an interaction weight.
            self.members = [BayesLogit(max_features=2 * self.max_features + 2)
                            for _ in self.interaction_variances]
            self.evidence = [0.0] * len(self.members)

    def _prior(self, interaction_variance: float) -> Callable[[str], float]:
        def prior(name: str) -> float:
            if name == INTERCEPT:
                return self.intercept_variance
            if name.startswith("treated*"):
                return interaction_variance
            return self.main_variance
        return prior

    @staticmethod
    def _design(x: dict[str, float], treated: bool) -> dict[str, float]:
        z = {INTERCEPT: 1.0, TREATED: 1.0 if treated else 0.0}
        for name, value in x.items():
            z[name] = value
            z[f"treated*{name}"] = value if treated else 0.0
        return z

    def weights(self) -> list[float]:
        """Each member's posterior weight (its share of the evidence)."""
        top = max(self.evidence)
        w = [math.exp(e - top) for e in self.evidence]
        total = sum(w)
        return [v / total for v in w]

    def predict_both(self, x: Features) -> tuple[float, float]:
        """(P(outcome) if treated, P(outcome) if held out), averaged over the members."""
        e = encode(x)
        d1, d0 = self._design(e, True), self._design(e, False)
        p1 = p0 = 0.0
        for member, w, iv in zip(self.members, self.weights(), self.interaction_variances):
            prior = self._prior(iv)
            p1 += w * member.proba(member.vector(d1, prior, grow=False))
            p0 += w * member.proba(member.vector(d0, prior, grow=False))
        return p1, p0

    def predict_one(self, x: Features) -> float:
        p1, p0 = self.predict_both(x)
        return p1 - p0

    def learn_one(self, x: Features, treated: bool, outcome: bool) -> None:
        e = encode(x)
        grow_with, design = self._design(e, True), self._design(e, bool(treated))
        for i, (member, iv) in enumerate(zip(self.members, self.interaction_variances)):
            prior = self._prior(iv)
            member.vector(grow_with, prior, grow=True)  # every name gets both its weights
            self.evidence[i] += member.update(member.vector(design, prior, grow=False), bool(outcome))
        self.learnt += 1
        self.treated_learnt += bool(treated)


@dataclass
class ResponseModel:
    """``predict_one(x)`` is P(outcome | x), whatever the treatment."""

    variance: float = 0.1
    intercept_variance: float = 4.0
    max_features: int = 128
    learnt: int = 0
    logit: BayesLogit | None = None

    def __post_init__(self) -> None:
        if self.logit is None:
            self.logit = BayesLogit(max_features=self.max_features + 1)

    def _prior(self, name: str) -> float:
        return self.intercept_variance if name == INTERCEPT else self.variance

    def predict_one(self, x: Features) -> float:
        assert self.logit is not None
        return self.logit.proba(self.logit.vector({INTERCEPT: 1.0, **encode(x)}, self._prior, grow=False))

    def learn_one(self, x: Features, outcome: bool) -> None:
        assert self.logit is not None
        self.logit.update(self.logit.vector({INTERCEPT: 1.0, **encode(x)}, self._prior, grow=True),
                          bool(outcome))
        self.learnt += 1
