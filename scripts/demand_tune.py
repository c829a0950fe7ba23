#!/usr/bin/env python3
"""The demand forecaster's knobs on the 64 origins before the online-retail
protocol's (where HALF_LIFE_DAYS, UNITS_PER_LINE_HALF_LIFE_DAYS and
INTERVAL_MASS in models/demand.py were chosen), or on the protocol itself with --protocol (to look, not to choose).

    python scripts/demand_tune.py ../shared/data/online-retail/online_retail.csv.gz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.cli import Parser  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="demand_tune", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("orders", type=Path, help="online_retail.csv.gz")
    p.add_argument("--protocol", action="store_true", help="the protocol's own origins")
    args = p.parse_args(argv)
    from backtest.demand_eval import DailyDemand, Protocol, tune
    from backtest.online_retail import OrderLineError, iter_days, read

    try:
        events, _ = read(args.orders)
        demand = DailyDemand.from_days(iter_days(events))
        protocol = Protocol() if args.protocol else Protocol().before()
        rows = tune(demand, protocol)
    except (OrderLineError, ValueError) as exc:
        print(f"demand_tune: {exc}", file=sys.stderr)
        return 1
    print(f"origins {protocol.first_origin}..{protocol.last_origin}, cut {protocol.cut}")
    print(f"  {'forecaster':34s} {'RMSSE':>7s} {'MASE':>7s} {'bias':>7s} {'cover 80':>9s}")
    for r in rows:
        cover = "-" if r["coverage_80"] is None else f"{r['coverage_80']:.1%}"
        print(f"  {r['forecaster']:34s} {r['rmsse']:7.4f} {r['mase_median']:7.4f} {r['bias']:+7.4f} {cover:>9s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
