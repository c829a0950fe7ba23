"""BG/NBD's expected purchases: the peer that churn risk is ranked against.

Fader, Hardie and Lee's BG/NBD model ("Counting your customers the easy
way", 2005), fitted by maximum likelihood on a whole customer base at once
(a backtest peer, not a streaming model): each customer's repeat visits
``x``, the time of their last one ``t_x`` and their age ``T`` (both from their
first visit, in days). ``expected_one`` is the number of visits a customer
is expected to make in the next ``t`` days, given their history.

>>> cdnow = BgNbd(r=0.243, alpha=4.414, a=0.793, b=2.426)  # the paper's fit (weeks)
>>> round(cdnow.expected_one(2, 30.43, 38.86, 39.0), 3)  # the paper's example: 1.226
1.226
>>> rows = [(0, 0.0, 30.0)] * 60 + [(3, 5.0, 30.0)] * 20 + [(3, 28.0, 30.0)] * 20 + [(6, 28.0, 30.0)] * 10
>>> model = BgNbd.fit(rows)
>>> [round(model.expected_one(x, tx, T, 30.0), 2) for x, tx, T in [(0, 0.0, 30.0), (3, 5.0, 30.0), (3, 28.0, 30.0)]]
[0.21, 0.11, 1.99]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

# (repeat visits, time of the last one, age), times in days from the first visit
History = tuple[int, float, float]


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float

    def log_likelihood(self, x: int, t_x: float, age: float) -> float:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        lg = math.lgamma
        head = lg(r + x) - lg(r) + r * math.log(alpha)
        beta = lg(a + b) + lg(b + x) - lg(b) - lg(a + b + x)
        alive = -(r + x) * math.log(alpha + age)
        if x == 0:
            return head + beta + alive
        gone = math.log(a) - math.log(b + x - 1) - (r + x) * math.log(alpha + t_x)
        top = max(alive, gone)
        return head + beta + top + math.log(math.exp(alive - top) + math.exp(gone - top))

    @classmethod
    def fit(cls, rows: Sequence[History]) -> "BgNbd":
        """Maximum-likelihood parameters for these customers."""
        from scipy.optimize import minimize

        counts: dict[History, int] = {}
        for row in rows:  # many customers share a history: each one is computed once
            counts[row] = counts.get(row, 0) + 1

        def loss(theta: Sequence[float]) -> float:
            model = cls(*(math.exp(min(v, 30.0)) for v in theta))
            try:
                return -sum(n * model.log_likelihood(*h) for h, n in counts.items())
            except (ValueError, OverflowError):
                return math.inf

        best = minimize(loss, [0.0, 0.0, 0.0, 0.0], method="Nelder-Mead",
                        options={"maxiter": 4000, "xatol": 1e-4, "fatol": 1e-6})
        return cls(*(math.exp(min(v, 30.0)) for v in best.x))

    def expected_one(self, x: int, t_x: float, age: float, t: float) -> float:
        """Expected visits in the next ``t`` days, given the customer's history."""
        from scipy.special import hyp2f1

        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        a_eff = a if abs(a - 1.0) > 1e-6 else 1.0 + 1e-6  # a = 1 is a removable singularity
        z = t / (alpha + age + t)
        head = (a_eff + b + x - 1) / (a_eff - 1)
        tail = ((alpha + age) / (alpha + age + t)) ** (r + x) * hyp2f1(r + x, b + x, a_eff + b + x - 1, z)
        value = head * (1.0 - tail)
        if x > 0:
            value /= 1.0 + a_eff / (b + x - 1) * ((alpha + age) / (alpha + t_x)) ** (r + x)
        return float(value) if math.isfinite(value) else 0.0
