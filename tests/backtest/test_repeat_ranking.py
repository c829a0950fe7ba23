"""Churn risk ranks a customer base: the planted shop's purchase log, cut in the
middle, against BG/NBD's expected purchases computed in the same run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from backtest.bgnbd import BgNbd
from backtest.repeat_ranking import repeat_ranking
from backtest.replay import ReplayConfig, run
from shop.planted import DAY_S, PlantedShop
from stream.config import Settings


def test_bgnbd_gives_the_papers_expected_purchases() -> None:
    cdnow = BgNbd(r=0.243, alpha=4.414, a=0.793, b=2.426)  # weeks
    assert cdnow.expected_one(2, 30.43, 38.86, 39.0) == pytest.approx(1.226, abs=1e-3)


@pytest.fixture(scope="module")
def purchase_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PlantedShop]:
    """40 days of the planted shop (300 users and 60 new customers), purchases only:
    as a shop's order history would give it."""
    shop = PlantedShop(42, users=300, new_customer_share=0.2)
    path = tmp_path_factory.mktemp("log") / "purchases.jsonl"
    with open(path, "wb") as f:
        for event in shop.events(until=shop.start_ts + 40 * DAY_S):
            if event.type == "purchase":
                f.write(event.to_json() + b"\n")
    return path, shop


def test_churn_risk_ranks_who_buys_again_above_bgnbd(purchase_log: tuple[Path, PlantedShop]) -> None:
    path, shop = purchase_log
    as_of = shop.start_ts + 20 * DAY_S
    result = asyncio.run(run(ReplayConfig(inputs=[path], as_of=as_of, progress=False,
                                          settings=Settings())))
    ranking = result.metrics["repeat_ranking"]
    assert ranking["customers"] > 200 and ranking["seen_once"]["customers"] > 50
    assert 0.15 < ranking["buy_again"] / ranking["customers"] < 0.9
    assert ranking["churn_risk_auc"] > ranking["bgnbd_expected_auc"], ranking
    assert ranking["churn_risk_auc"] >= 0.9, ranking
    # As before: a customer seen once scored 0 (BG/NBD's P(alive) of 1) ranks
    # worse than a coin, as on the real shop's log.
    after = _buyers_after(path, as_of)
    old = [dict(u, churn_risk=0.0 if u["sessions"] <= 1 else u["churn_risk"]) for u in result.users]
    assert repeat_ranking(old, after, as_of, shop.start_ts + 40 * DAY_S)["churn_risk_auc"] < 0.5
    # Customers seen once and never again raised no_second_visit, never churn_risk.
    once = {u["user_id"] for u in result.users if u["sessions"] == 1} - after
    kinds = {a["kind"] for a in result.alerts if a["user_id"] in once and a["kind"] != "fraud"}
    assert kinds == {"no_second_visit"}


def _buyers_after(path: Path, as_of: float) -> set[str]:
    rows = map(orjson.loads, path.read_bytes().splitlines())
    return {row["user_id"] for row in rows if row["ts"] >= as_of}
