"""Does churn risk rank who buys again? Against BG/NBD's expected purchases.

For a backtest cut at ``as_of``: every customer (a user with a purchase
before the cut) is labelled by whether they buy again after it, and two
rankings are judged by ROC AUC on that label, in the same run: ``churn_risk``
as of the cut (the lower, the likelier to buy again) and BG/NBD's expected
visits over the rest of the log (``backtest/bgnbd.py``, fitted on the same
customers' visits: sessions after the first, time of the last, age). Both
are also judged on customers seen once and on repeat customers apart. Meant
for a purchase log, where a visit is a purchase.

>>> day = 86400.0
>>> users = [{"user_id": f"u{i}", "purchases": 1, "sessions": s, "first_seen": 0.0,
...           "last_seen": last * day, "churn_risk": risk}
...          for i, (s, last, risk) in enumerate([(1, 1, .9), (1, 8, .7), (3, 9, .2), (2, 2, .8)])]
>>> out = repeat_ranking(users, {"u1", "u2"}, as_of=10 * day, until=20 * day)
>>> out["customers"], out["buy_again"], out["churn_risk_auc"]
(4, 2, 1.0)
"""

from __future__ import annotations

from typing import Any, Collection, Sequence

from backtest.alert_metrics import roc_auc
from backtest.bgnbd import BgNbd

DAY_S = 86400.0


def repeat_ranking(
    users: Sequence[dict], buyers_after: Collection[str], as_of: float, until: float
) -> dict[str, Any]:
    """ROC AUC of ``-churn_risk`` and of BG/NBD's expected visits for "buys
    again after ``as_of``" (``users``: rows as of the cut; ``until``: the end
    of the log, the horizon of the expectation)."""
    customers = [u for u in users if u.get("purchases", 0) > 0 and u.get("first_seen") is not None]
    if not customers:
        return {}
    histories = [(max(u["sessions"] - 1, 0), (u["last_seen"] - u["first_seen"]) / DAY_S,
                  max(as_of - u["first_seen"], 0.0) / DAY_S) for u in customers]
    model = BgNbd.fit(histories)
    horizon = max(until - as_of, 0.0) / DAY_S
    expected = [model.expected_one(x, t_x, age, horizon) for x, t_x, age in histories]
    ys = [u["user_id"] in buyers_after for u in customers]
    risk = [-u["churn_risk"] for u in customers]
    out: dict[str, Any] = {
        "as_of": as_of, "customers": len(customers), "buy_again": sum(ys),
        "churn_risk_auc": roc_auc(ys, risk), "bgnbd_expected_auc": roc_auc(ys, expected),
        "bgnbd": {k: round(v, 6) for k, v in vars(model).items()},
    }
    for name, keep in (("seen_once", lambda x: x == 0), ("repeat", lambda x: x > 0)):
        idx = [i for i, h in enumerate(histories) if keep(h[0])]
        sub = [ys[i] for i in idx]
        out[name] = {"customers": len(idx), "buy_again": sum(sub),
                     "churn_risk_auc": roc_auc(sub, [risk[i] for i in idx]),
                     "bgnbd_expected_auc": roc_auc(sub, [expected[i] for i in idx])}
    return out
