"""Prequential uplift on a campaign log: each customer is scored, then learnt.

Customers go through in event time (a log without times: in an order drawn
with ``seed``). Each is scored by the uplift model, by a response model
(P(outcome), learnt from treated and held-out customers alike) and by a
random draw, all *before* their outcome is learnt, so no customer's own
outcome ever helps rank them. The scores are then judged together at the end:

- ``top_30_uplift_points``: among the 30 % a scorer ranks first, the outcome
  rate of the treated minus that of the held-out, in points, with its 95 %
  interval (normal approximation of a difference of two proportions);
- the Qini curve: for the top share ``s`` of the ranking, the incremental
  outcomes ``Y_T(s) - Y_C(s) * N_T(s) / N_C(s)`` per 100 customers of the
  campaign; ``qini_area``: its mean height above the random line;
- the same top-30 % uplift for the second half of the order only, where
  the models have learnt from at least half the customers.

Beside them, under ``offline``, the classic offline two-model logistic
uplift, cross-fitted and in sample (:mod:`backtest.uplift_offline`): what a
batch team would report, and how much of such a figure is hindsight.

Ties are broken by the order customers came in (itself random or by time).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from backtest.campaign_log import CampaignLogError, CampaignRecord
from backtest.uplift_offline import offline_scores
from models.uplift import ResponseModel, UpliftModel

TOP_SHARE = 0.3
QINI_STEPS = 20
SCORERS = ("uplift_model", "response_model", "random")


@dataclass
class UpliftRun:
    metrics: dict
    qini: dict[str, list[dict]]


def ordered(records: list[CampaignRecord], seed: int) -> list[CampaignRecord]:
    rng = random.Random(seed)
    keys = [rng.random() for _ in records]
    if all(r.ts is not None for r in records):
        order = sorted(range(len(records)), key=lambda i: (records[i].ts, keys[i]))
    else:
        order = sorted(range(len(records)), key=lambda i: keys[i])
    return [records[i] for i in order]


def _uplift(treated: np.ndarray, y: np.ndarray) -> dict:
    nt, nc = int(treated.sum()), int((~treated).sum())
    if nt == 0 or nc == 0:
        return {"points": None, "low": None, "high": None, "treated": nt, "held_out": nc}
    pt, pc = float(y[treated].mean()), float(y[~treated].mean())
    se = math.sqrt(pt * (1 - pt) / nt + pc * (1 - pc) / nc)
    diff = pt - pc
    return {"points": round(100 * diff, 3), "low": round(100 * (diff - 1.96 * se), 3),
            "high": round(100 * (diff + 1.96 * se), 3), "treated": nt, "held_out": nc}


def _top(scores: np.ndarray, treated: np.ndarray, y: np.ndarray, share: float) -> dict:
    rank = np.argsort(-scores, kind="stable")[: int(round(len(scores) * share))]
    return _uplift(treated[rank], y[rank])


def _qini(scores: np.ndarray, treated: np.ndarray, y: np.ndarray) -> list[dict]:
    rank = np.argsort(-scores, kind="stable")
    t, yy = treated[rank], y[rank]
    ct, cc = np.cumsum(t), np.cumsum(~t)
    yt, yc = np.cumsum(yy * t), np.cumsum(yy * ~t)
    n = len(scores)
    curve = [{"share": 0.0, "incremental_per_100": 0.0}]
    for step in range(1, QINI_STEPS + 1):
        k = int(round(n * step / QINI_STEPS)) - 1
        inc = yt[k] - (yc[k] * ct[k] / cc[k] if cc[k] else 0.0)
        curve.append({"share": step / QINI_STEPS, "incremental_per_100": round(100 * float(inc) / n, 4)})
    return curve


def _qini_area(curve: list[dict]) -> float:
    end = curve[-1]["incremental_per_100"]
    above = [c["incremental_per_100"] - end * c["share"] for c in curve]
    return round(float(np.trapezoid(above, [c["share"] for c in curve])), 4)


def evaluate(records: list[CampaignRecord], outcome: str = "visit", seed: int = 1,
             model: UpliftModel | None = None) -> UpliftRun:
    """Score then learn every customer in order; judge the three scorers."""
    if not records:
        raise CampaignLogError("the campaign log has no records")
    missing = sum(1 for r in records if outcome not in r.outcomes)
    if missing:
        raise CampaignLogError(f"{missing:,} records have no outcome {outcome!r}")
    records = ordered(records, seed)
    uplift = model if model is not None else UpliftModel()
    response = ResponseModel()
    rng = random.Random(seed + 1)
    n = len(records)
    scores = {name: np.zeros(n) for name in SCORERS}
    treated = np.zeros(n, dtype=bool)
    y = np.zeros(n)
    for i, r in enumerate(records):
        scores["uplift_model"][i] = uplift.predict_one(r.features)
        scores["response_model"][i] = response.predict_one(r.features)
        scores["random"][i] = rng.random()
        hit = r.outcomes[outcome] > 0
        uplift.learn_one(r.features, r.treated, hit)
        response.learn_one(r.features, hit)
        treated[i], y[i] = r.treated, float(hit)
    half = n // 2
    result: dict = {
        "campaigns": sorted({r.campaign for r in records}),
        "outcome": outcome,
        "seed": seed,
        "order": "event time" if all(r.ts is not None for r in records) else "drawn with the seed",
        "customers": n,
        "overall": _uplift(treated, y),
        "top_share": TOP_SHARE,
        "scorers": {},
    }
    qini = {}
    for name, s in scores.items():
        curve = _qini(s, treated, y)
        qini[name] = curve
        result["scorers"][name] = {
            "top_30_uplift": _top(s, treated, y, TOP_SHARE),
            "top_30_uplift_second_half": _top(s[half:], treated[half:], y[half:], TOP_SHARE),
            "qini_area": _qini_area(curve),
        }
    result["offline"] = {}
    for name, s in offline_scores([r.features for r in records], treated, y, seed).items():
        curve = _qini(s, treated, y)
        qini[name] = curve
        result["offline"][name] = {"top_30_uplift": _top(s, treated, y, TOP_SHARE),
                                   "qini_area": _qini_area(curve)}
    result["model_weights"] = {str(v): round(w, 4) for v, w in
                               zip(uplift.interaction_variances, uplift.weights())}
    result["qini"] = qini
    return UpliftRun(metrics=result, qini=qini)
