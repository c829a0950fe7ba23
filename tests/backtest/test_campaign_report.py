"""The campaign report of a replay: metrics.json's ``campaigns`` and its report.html section."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from backtest import report
from backtest.replay import ReplayConfig, run
from stream.config import Settings
from tests.stream.test_campaigns import USERS, campaign_file, shop


def test_replay_reports_treated_against_held_out(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(m.value + b"\n" for m in shop()))
    settings = Settings(campaigns=campaign_file(tmp_path), holdout_share=0.3)
    config = ReplayConfig(inputs=[events], progress=False, settings=settings, batch_size=50)
    result = asyncio.run(run(config))
    report.write(result, tmp_path / "out", config)
    metrics = orjson.loads((tmp_path / "out" / "metrics.json").read_bytes())
    [row] = [r for r in metrics["campaigns"] if r["segment"] == "all"]
    treated, held = row["treated"]["n"], row["held_out"]["n"]
    assert treated + held == len(USERS)
    assert row["incremental_conversions"]["value"] == treated  # every treated bought, no held out did
    assert row["cost"] == 1.5 * treated
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Campaigns: treated against held out" in page and "Campaigns: uplift in conversion" in page
