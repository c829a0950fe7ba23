"""An alert threshold set by how often to alert, not by a magic number.

``AlertRate`` keeps a rolling quantile of recent scores: the threshold above
which about ``rate`` of them fall. It moves with the scores, so a model that
drifts or is retrained keeps alerting on the same share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from river import stats


@dataclass
class AlertRate:
    """The score threshold that alerts on about ``rate`` of recent purchases.

    >>> rate = AlertRate(rate=0.1, window=100, min_scores=50)
    >>> rate.threshold is None
    True
    >>> for i in range(100):
    ...     rate.update(i / 100)
    >>> sum(i / 100 >= rate.threshold for i in range(100))  # scores at or above it
    10
    """

    rate: float = 0.01
    window: int = 5000
    min_scores: int = 500
    seen: int = 0
    quantile: Any = None

    def __post_init__(self) -> None:
        if not 0.0 < self.rate < 1.0:
            raise ValueError("the alert rate must be between 0 and 1")
        if self.quantile is None:
            self.quantile = stats.RollingQuantile(q=1.0 - self.rate, window_size=self.window)

    def update(self, score: float) -> None:
        self.quantile.update(score)
        self.seen += 1

    @property
    def threshold(self) -> float | None:
        if self.seen < self.min_scores:
            return None
        return float(self.quantile.get())
