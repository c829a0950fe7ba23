#!/usr/bin/env python
"""How hard the card scenario is, without shopstream: the peers its figures are read against.

    python scripts/cards_difficulty.py --seed 42 --count 100000

Prints, for ``shop.cards.CardShop``: the best single ``attrs`` field as a
ranking of frauds (average precision), a logistic regression fitted offline
(five-fold cross-validation on every purchase, the ceiling an online learner
works towards) and river's HalfSpaceTrees (``MinMaxScaler`` in front, on the
``attrs`` and log amount, each purchase scored then learnt), as ROC AUC /
average precision.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import numpy as np  # noqa: E402
from river import anomaly, compose, preprocessing  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402
from sklearn.model_selection import cross_val_predict  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from scripts.cli import Parser  # noqa: E402
from shop.cards import CardShop  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="cards_difficulty.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--count", type=int, default=100_000, help="purchases (default 100000)")
    args = p.parse_args(argv)
    if args.count < 1000:
        p.error("--count must be >= 1000")
    shop = CardShop(args.seed)
    events = list(shop.events(args.count))
    names = sorted(events[0].attrs, key=lambda n: int(n[1:]))
    x = np.array([[e.attrs[n] for n in names] + [math.log1p(e.price or 0.0)] for e in events])
    y = np.array([e.event_id in shop.fraud_events for e in events])
    best = max((max(average_precision_score(y, x[:, k]), average_precision_score(y, -x[:, k])), n)
               for k, n in enumerate(names))
    offline = cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
                                x, y, cv=5, method="predict_proba")[:, 1]
    hst = compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=args.seed))
    scores = []
    for e in events:
        row = {"amount": math.log1p(e.price or 0.0), **e.attrs}
        scores.append(hst.score_one(row))
        hst.learn_one(row)
    print(f"cards seed {args.seed}: {len(events):,} purchases, {int(y.sum())} fraud")
    print(f"best single field: {best[1]}, average precision {best[0]:.3f}")
    print(f"logistic regression offline (5-fold): ROC AUC {roc_auc_score(y, offline):.4f}, "
          f"average precision {average_precision_score(y, offline):.4f}")
    print(f"river HalfSpaceTrees: ROC AUC {roc_auc_score(y, scores):.4f}, "
          f"average precision {average_precision_score(y, scores):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
