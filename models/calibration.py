"""Quality of probability estimates: calibration error and a prequential tracker.

``expected_calibration_error`` bins predictions into 10 equal-width bins of
[0, 1] and averages |observed rate - mean prediction| weighted by the bin's
share of rows. ``ProbabilityMetrics`` keeps the same bins plus a 1000-bin
score histogram, so ROC AUC, log loss, Brier score and ECE over every row
seen so far cost O(1) per update and fit in a small JSON document.

>>> round(expected_calibration_error([True, False, True, False], [0.9, 0.1, 0.6, 0.4]), 3)
0.25
>>> m = ProbabilityMetrics()
>>> for y, p in [(True, 0.9), (False, 0.1), (True, 0.6), (False, 0.4), (False, 0.7)]:
...     m.update(y, p)
>>> r = m.get()
>>> r["n"], r["positives"], r["roc_auc"], r["ece"]
(5, 2, 0.8333, 0.34)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

EPS = 1e-15


def _bin(p: float, bins: int) -> int:
    return min(max(int(p * bins), 0), bins - 1)


def expected_calibration_error(ys: Iterable[bool], ps: Iterable[float], bins: int = 10) -> float:
    """ECE over ``bins`` equal-width bins (a prediction of exactly 1 goes in the last)."""
    count, sum_p, sum_y = [0] * bins, [0.0] * bins, [0.0] * bins
    for y, p in zip(ys, ps):
        b = _bin(p, bins)
        count[b] += 1
        sum_p[b] += p
        sum_y[b] += float(y)
    n = sum(count)
    if n == 0:
        return 0.0
    return sum(abs(sum_y[b] - sum_p[b]) for b in range(bins)) / n


@dataclass
class ProbabilityMetrics:
    """Running ROC AUC, log loss, Brier score and ECE of P(y) predictions.

    AUC is computed from a ``auc_bins`` histogram of scores per class: pairs
    falling in the same bin count as ties, so it is exact to 1/``auc_bins``
    in score. Feed each prediction once its label is known (prequential:
    the prediction made before the label, not one made afterwards)."""

    calibration_bins: int = 10
    auc_bins: int = 1000
    n: int = 0
    positives: int = 0
    log_loss_sum: float = 0.0
    brier_sum: float = 0.0
    cal_count: list[int] = field(default_factory=list)
    cal_p: list[float] = field(default_factory=list)
    cal_y: list[int] = field(default_factory=list)
    pos_hist: list[int] = field(default_factory=list)
    neg_hist: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.cal_count:
            self.cal_count = [0] * self.calibration_bins
            self.cal_p = [0.0] * self.calibration_bins
            self.cal_y = [0] * self.calibration_bins
        if not self.pos_hist:
            self.pos_hist = [0] * self.auc_bins
            self.neg_hist = [0] * self.auc_bins

    def update(self, y: bool, p: float) -> None:
        y = bool(y)
        self.n += 1
        self.positives += y
        q = min(max(p, EPS), 1.0 - EPS)
        self.log_loss_sum -= math.log(q) if y else math.log(1.0 - q)
        self.brier_sum += (p - y) ** 2
        b = _bin(p, self.calibration_bins)
        self.cal_count[b] += 1
        self.cal_p[b] += p
        self.cal_y[b] += y
        (self.pos_hist if y else self.neg_hist)[_bin(p, self.auc_bins)] += 1

    def roc_auc(self) -> float | None:
        """P(score of a positive > score of a negative), ties half; None without both classes."""
        negatives = self.n - self.positives
        if self.positives == 0 or negatives == 0:
            return None
        below, pairs = 0, 0.0
        for pos, neg in zip(self.pos_hist, self.neg_hist):
            pairs += pos * (below + 0.5 * neg)
            below += neg
        return pairs / (self.positives * negatives)

    def ece(self) -> float:
        if self.n == 0:
            return 0.0
        return sum(abs(y - p) for y, p in zip(self.cal_y, self.cal_p)) / self.n

    def get(self) -> dict[str, Any]:
        """``n``, ``positives``, ``base_rate``, ``mean_p``, ``roc_auc``, ``log_loss``,
        ``brier``, ``ece`` (rounded to 4 places; rates are None before any row)."""
        n = self.n
        auc = self.roc_auc()

        def r(v: float | None) -> float | None:
            return None if v is None or n == 0 else round(v, 4)

        return {
            "n": n,
            "positives": self.positives,
            "base_rate": r(self.positives / n if n else None),
            "mean_p": r(sum(self.cal_p) / n if n else None),
            "roc_auc": r(auc),
            "log_loss": r(self.log_loss_sum / n if n else None),
            "brier": r(self.brier_sum / n if n else None),
            "ece": r(self.ece()),
        }

    def reliability(self) -> list[dict[str, float]]:
        """Per non-empty calibration bin: its range, rows, mean prediction, observed rate."""
        out = []
        for b, c in enumerate(self.cal_count):
            if c:
                out.append({
                    "lo": b / self.calibration_bins, "hi": (b + 1) / self.calibration_bins, "n": c,
                    "mean_p": round(self.cal_p[b] / c, 4), "rate": round(self.cal_y[b] / c, 4),
                })
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbabilityMetrics:
        return cls(**data)
