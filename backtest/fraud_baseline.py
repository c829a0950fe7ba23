"""A peer for the fraud score: river's HalfSpaceTrees, as river's documentation runs it.

The replay scores every purchase with it beside shopstream's own score, on
the same fraud features (``models.fraud.purchase_features``), each purchase
scored and then learnt at once: the baseline never waits for a batch or a
snapshot, which shopstream's detector does (a worker scores a batch with the
model it had before it). ``metrics.json`` has it as ``fraud.hst_baseline``.

>>> baseline = HstBaseline(seed=1)
>>> first = baseline.score_then_learn({"amount": 100.0, "v1": 1.0})  # 0 until a window is full
>>> scores = [baseline.score_then_learn({"amount": 20.0 + i % 5, "v1": 0.1 * (i % 3)}) for i in range(600)]
>>> baseline.score_then_learn({"amount": 90.0, "v1": 0.9}) > max(scores[-100:])
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from river import anomaly, compose, preprocessing

DESCRIPTION = ("river MinMaxScaler | HalfSpaceTrees (10 trees, height 8, window 250) on the "
               "purchase's fraud features, each purchase scored then learnt")


@dataclass
class HstBaseline:
    seed: int = 42
    model: Any = None

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=self.seed))

    def score_then_learn(self, x: dict[str, float]) -> float:
        score = float(self.model.score_one(x))
        self.model.learn_one(x)
        return score
