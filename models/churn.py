"""Churn risk: has a returning customer gone, given their own rhythm and silence?

A user's returns are counted as in the BG/NBD model of customer bases: while
active, a user comes back at their own rate, unknown but with a population
prior (a gamma distribution whose mean gap is ``prior_gap_days``, worth
``prior_weight`` observed gaps); after each return they may drop out for
good with a probability that has a beta prior (``dropout_a``,
``dropout_b``). Given ``returns`` (sessions after the first) over ``span``
(first to last seen) and the current ``silence``, ``score_one`` is
P(the user has dropped out), from 0 (surely still active) to 1 (surely gone).

A user seen in one session only has no rhythm yet and, as in BG/NBD, cannot
have dropped out: their risk is 0. The more returns a user made, and the more
regular they were, the sooner a silence counts against them.

``due_after`` inverts the score: the silence after which the risk crosses
``threshold``, so that a worker can schedule each user's check in a sorted set
instead of rescoring everyone.

>>> churn = ChurnRisk(prior_gap_days=1.0, threshold=0.8)
>>> day = 86400.0
>>> churn.score_one(returns=0, span_s=0.0, silence_s=30 * day)
0.0
>>> regular = dict(returns=20, span_s=20 * day)  # about one visit a day
>>> [round(churn.score_one(**regular, silence_s=d * day), 2) for d in (0.5, 2, 5, 7)]
[0.07, 0.23, 0.8, 0.95]
>>> silence = churn.due_after(**regular)
>>> round(silence / day, 2), round(churn.score_one(**regular, silence_s=silence), 3)
(4.99, 0.8)
>>> churn.score_one(returns=3, span_s=9 * day, silence_s=5 * day) < churn.score_one(**regular, silence_s=5 * day)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DAY_S = 86400.0


@dataclass(frozen=True)
class ChurnRisk:
    """P(a user has dropped out), from their returns, span and silence."""

    prior_gap_days: float = 2.0
    prior_weight: float = 1.0
    dropout_a: float = 1.0
    dropout_b: float = 3.0
    threshold: float = 0.8

    def _terms(self, returns: int, span_s: float) -> tuple[float, float, float]:
        """(dropout odds at zero silence, gamma shape, gamma scale in seconds)."""
        shape = self.prior_weight + returns
        scale = self.prior_weight * self.prior_gap_days * DAY_S + max(span_s, 0.0)
        odds = self.dropout_a / (self.dropout_b + returns - 1)
        return odds, shape, scale

    def score_one(self, returns: int, span_s: float, silence_s: float) -> float:
        if returns < 1:
            return 0.0
        odds, shape, scale = self._terms(returns, span_s)
        # log P(no return for this long | still active)
        log_quiet = shape * math.log(scale / (scale + max(silence_s, 0.0)))
        log_odds = math.log(odds) - log_quiet
        return 1.0 / (1.0 + math.exp(-log_odds)) if log_odds < 700 else 1.0

    def due_after(self, returns: int, span_s: float) -> float | None:
        """The silence (s) at which ``score_one`` reaches ``threshold`` (None: never)."""
        if returns < 1:
            return None
        odds, shape, scale = self._terms(returns, span_s)
        target = self.threshold / (1.0 - self.threshold)
        if odds >= target:
            return 0.0
        # (scale / (scale + s)) ** shape == odds / target
        return scale * ((target / odds) ** (1.0 / shape) - 1.0)

    def typical_gap_s(self, returns: int, span_s: float) -> float:
        """The user's mean gap between visits, shrunk towards the prior."""
        _, shape, scale = self._terms(returns, span_s)
        return scale / shape
