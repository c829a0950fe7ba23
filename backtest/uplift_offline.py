"""Offline references for a campaign backtest, computed in the same run as the
prequential scorers of :mod:`backtest.uplift_eval`.

The classic offline uplift model is two logistic regressions, one fitted on
the treated and one on the held-out customers, whose difference in P(outcome)
ranks customers (the "two-model" approach). It is given two ways:

- ``two_model_logistic_5fold``: cross-fitted, each customer scored by the
  pair fitted on the other four fifths. This is what an offline team would
  report, and the design behind the reference figure in the data's README.
- ``two_model_logistic_in_sample``: fitted on every customer and scoring
  those same customers. Each customer's own outcome helps rank them, so no
  honest model reaches it: it shows how much of a figure is hindsight.

Neither is a stream model: both see the whole log at once.
"""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from models.uplift import Features, encode

FOLDS = 5
MIN_PER_GROUP = 50  # fewer treated or held-out customers in a fit: no reference


def _fit(x: np.ndarray, y: np.ndarray):  # type: ignore[no-untyped-def]
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)


def _two_model(x: np.ndarray, treated: np.ndarray, y: np.ndarray, x_scored: np.ndarray) -> np.ndarray:
    p_treated = _fit(x[treated], y[treated]).predict_proba(x_scored)[:, 1]
    p_held_out = _fit(x[~treated], y[~treated]).predict_proba(x_scored)[:, 1]
    return p_treated - p_held_out


def _fits(treated: np.ndarray, y: np.ndarray) -> bool:
    """Both groups large enough, and each with both outcomes."""
    return all(group.sum() >= MIN_PER_GROUP and 0 < y[group].sum() < group.sum()
               for group in (treated, ~treated))


def offline_scores(features: list[Features], treated: np.ndarray, y: np.ndarray,
                   seed: int) -> dict[str, np.ndarray]:
    """Each reference's uplift score per customer, in the order given; empty
    when the log is too small (or one-sided) for the fits.

    >>> import random
    >>> rng = random.Random(3)
    >>> xs = [{"loyal": rng.random() < 0.5} for _ in range(2000)]
    >>> t = np.array([rng.random() < 0.5 for _ in xs])
    >>> y = np.array([rng.random() < (0.1 + 0.3 * (x["loyal"] and tr)) for x, tr in zip(xs, t)])
    >>> s = offline_scores(xs, t, y.astype(float), seed=1)
    >>> sorted(s)
    ['two_model_logistic_5fold', 'two_model_logistic_in_sample']
    >>> loyal = np.array([x["loyal"] for x in xs])
    >>> bool(s["two_model_logistic_5fold"][loyal].mean() > s["two_model_logistic_5fold"][~loyal].mean() + 0.2)
    True
    >>> offline_scores(xs[:20], t[:20], y[:20].astype(float), seed=1)
    {}
    """
    if not _fits(treated, y):
        return {}
    x = DictVectorizer(sparse=False).fit_transform([encode(f) for f in features])
    crossed = np.zeros(len(y))
    for train, scored in KFold(FOLDS, shuffle=True, random_state=seed).split(x):
        if not _fits(treated[train], y[train]):
            return {}
        crossed[scored] = _two_model(x[train], treated[train], y[train], x[scored])
    return {"two_model_logistic_5fold": crossed,
            "two_model_logistic_in_sample": _two_model(x, treated, y, x)}
