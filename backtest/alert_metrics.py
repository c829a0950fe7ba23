"""How good the alerts of a backtest were, against known outcomes.

Fraud scores are judged against the outcomes of the labels file (per
purchase, or per order) over the whole stream (``all``), split at the time
the first outcome arrived (before it only the unsupervised detector was at
work), and over the stream's first ``FIRST_HOURS`` hours (``first_hours``);
``without_labels`` judges that detector's own score over the whole stream,
and ``hst_baseline`` river's HalfSpaceTrees scored in the same run
(``backtest/fraud_baseline.py``) over the same purchases. Churn risk is judged against
what a synthetic shop planted (``churned_at`` in its truth file).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import orjson

from backtest.fraud_baseline import DESCRIPTION as BASELINE
from stream.events import Label

if TYPE_CHECKING:
    from stream.learner import Learner
    from stream.outputs import Alert

DAY_S = 86400.0
FIRST_HOURS = 6.0
# (event_id, order_id, ts, fraud score and anomaly score given at purchase
# time, river HalfSpaceTrees' score of the baseline)
Purchase = tuple[str, "str | None", float, float, float, float]


def roc_auc(ys: Sequence[bool], scores: Sequence[float]) -> float | None:
    """ROC AUC of ``scores`` for ``ys``, to 4 places; None unless both classes occur."""
    if not 0 < sum(ys) < len(ys):
        return None
    from sklearn.metrics import roc_auc_score

    return round(float(roc_auc_score(ys, scores)), 4)


def _ranking(ys: Sequence[bool], scores: Sequence[float]) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score

    out: dict[str, Any] = {"purchases": len(ys), "fraud": int(sum(ys))}
    if 0 < sum(ys) < len(ys):
        out["roc_auc"] = roc_auc(ys, scores)
        out["average_precision"] = round(float(average_precision_score(ys, scores)), 4)
    return out


def outcomes(labels: Sequence[Label]) -> tuple[dict[str, bool], dict[str, bool]]:
    """Outcomes by event id and by order id (the last word wins)."""
    by_event: dict[str, bool] = {}
    by_order: dict[str, bool] = {}
    for label in labels:
        if label.event_id is not None:
            by_event[label.event_id] = label.fraud
        elif label.order_id is not None:
            by_order[label.order_id] = label.fraud
    return by_event, by_order


def fraud_metrics(
    purchases: Sequence[Purchase], labels: Sequence[Label], alerts: Sequence[Alert], learner: Learner
) -> dict[str, Any]:
    alerted = {a.event_id for a in alerts if a.kind == "fraud"}
    out: dict[str, Any] = {"purchases": len(purchases), "alerts": len(alerted),
                           "alert_share": round(len(alerted) / max(len(purchases), 1), 4),
                           "labels": learner.fraud_labels.counts(),
                           "prequential": learner.fraud_metrics.get()}
    if not labels:
        return out
    by_event, by_order = outcomes(labels)
    first_label = labels[0].ts
    rows = []
    for event_id, order_id, ts, score, anomaly, baseline in purchases:
        y = by_event.get(event_id, by_order.get(order_id or "", None))
        if y is not None:
            rows.append((ts, y, score, event_id in alerted, anomaly, baseline))
    if not rows:
        return out
    out["all"] = _ranking([r[1] for r in rows], [r[2] for r in rows])
    start = min(p[2] for p in purchases)
    early = [r for r in rows if r[0] < start + FIRST_HOURS * 3600.0]
    out["first_hours"] = {"hours": FIRST_HOURS, **_ranking([r[1] for r in early], [r[2] for r in early])}
    out["before_labels"] = _ranking([r[1] for r in rows if r[0] < first_label],
                                    [r[2] for r in rows if r[0] < first_label])
    out["after_labels"] = _ranking([r[1] for r in rows if r[0] >= first_label],
                                   [r[2] for r in rows if r[0] >= first_label])
    # The unsupervised detector alone, over every purchase: the score as it
    # would have been had no outcome ever arrived.
    out["without_labels"] = _ranking([r[1] for r in rows], [r[4] for r in rows])
    out["hst_baseline"] = {
        "model": BASELINE,
        "all": _ranking([r[1] for r in rows], [r[5] for r in rows]),
        "first_hours": {"hours": FIRST_HOURS, **_ranking([r[1] for r in early], [r[5] for r in early])},
    }
    out["blend"] = learner.fraud.blend.weights()
    hits = sum(1 for r in rows if r[3] and r[1])
    flagged = sum(1 for r in rows if r[3])
    frauds = sum(1 for r in rows if r[1])
    out["alert_precision"] = round(hits / flagged, 4) if flagged else None
    out["alert_recall"] = round(hits / frauds, 4) if frauds else None
    return out


def churn_metrics(users: Sequence[dict], truth: Path | None, threshold: float) -> dict[str, Any]:
    """Precision and recall of ``churn_risk >= threshold`` for planted churners,
    among returning users (seen in two sessions or more: the churners are
    regulars, and a user seen once is judged by ``no_second_visit_metrics``)."""
    if truth is None:
        return {}
    planted: dict[str, bool] = {}
    for line in truth.read_bytes().splitlines():
        row = orjson.loads(line)
        if "churned_at" in row:
            planted[row["user_id"]] = row["churned_at"] is not None
    rows = [(planted[u["user_id"]], u["churn_risk"]) for u in users
            if u["user_id"] in planted and u.get("sessions", 2) >= 2]
    if not rows:
        return {}
    flagged = sum(1 for _, risk in rows if risk >= threshold)
    hits = sum(1 for churned, risk in rows if churned and risk >= threshold)
    churners = sum(1 for churned, _ in rows if churned)
    out: dict[str, Any] = {
        "users": len(rows), "planted_churners": churners, "flagged": flagged,
        "precision": round(hits / flagged, 4) if flagged else None,
        "recall": round(hits / churners, 4) if churners else None,
        "threshold": threshold,
    }
    auc = roc_auc([c for c, _ in rows], [r for _, r in rows])
    if auc is not None:
        out["roc_auc"] = auc
    return out


def alert_counts(alerts: Sequence[Alert]) -> dict[str, int]:
    return dict(sorted(Counter(a.kind for a in alerts).items()))


def alert_timeline(
    alerts: Sequence[dict], purchases: Sequence[Purchase], labels: Sequence[Label]
) -> list[dict[str, Any]]:
    """Per day of event time: alerts of each kind, fraud alerts per purchase,
    and (with outcomes) the share of fraud alerts that were fraud."""
    if not purchases and not alerts:
        return []
    by_event, by_order = outcomes(labels)
    days: dict[int, dict[str, Any]] = defaultdict(lambda: {"kinds": Counter(), "purchases": 0,
                                                          "fraud_alerts": 0, "true_alerts": 0,
                                                          "judged": 0})
    fraud_of = {}
    for event_id, order_id, ts, *_ in purchases:
        days[int(ts // DAY_S)]["purchases"] += 1
        fraud_of[event_id] = by_event.get(event_id, by_order.get(order_id or "", None))
    for a in alerts:
        day = days[int(a["ts"] // DAY_S)]
        day["kinds"][a["kind"]] += 1
        if a["kind"] == "fraud":
            day["fraud_alerts"] += 1
            y = fraud_of.get(a["event_id"])
            if y is not None:
                day["judged"] += 1
                day["true_alerts"] += bool(y)
    out = []
    for index in sorted(days):
        d = days[index]
        out.append({
            "ts": index * DAY_S + DAY_S / 2,
            "kinds": dict(d["kinds"]),
            "fraud_alert_rate": d["fraud_alerts"] / d["purchases"] if d["purchases"] else math.nan,
            "fraud_precision": d["true_alerts"] / d["judged"] if d["judged"] else math.nan,
        })
    return out
