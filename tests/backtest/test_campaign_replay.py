"""replay.py --campaign: the contract log, the Hillstrom CSV as it is, prequential uplift."""

from __future__ import annotations

import gzip
import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from backtest import campaign_log
from backtest.campaign_log import CampaignLogError, CampaignRecord
from backtest.uplift_eval import evaluate
from tests.support import ROOT

HILLSTROM = ROOT.parent / "shared" / "data" / "campaign-hillstrom" / "hillstrom.csv.gz"
needs_hillstrom = pytest.mark.skipif(not HILLSTROM.exists(), reason=f"{HILLSTROM} is not there")


def replay(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "replay.py"), "--quiet", *args],
                          capture_output=True, text=True, timeout=600)


def planted_log(n: int, seed: int) -> list[CampaignRecord]:
    """Half persuadables (+40 points when treated), half sure things (no uplift)."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        persuadable = rng.random() < 0.5
        treated = rng.random() < 0.5
        p = (0.5 if treated else 0.1) if persuadable else 0.6
        records.append(CampaignRecord(
            decision_id=f"d{i}", campaign="planted", user_id=f"u{i}", treated=treated,
            features={"kind": "p" if persuadable else "s", "noise": rng.random()},
            outcomes={"visit": float(rng.random() < p)}, ts=1_700_000_000.0 + i))
    return records


def test_uplift_model_ranks_the_planted_persuadables_first() -> None:
    m = evaluate(planted_log(4000, seed=2), seed=1).metrics
    model, response = m["scorers"]["uplift_model"], m["scorers"]["response_model"]
    # The top 30 % should be persuadables (40 points); the response model picks sure things (0).
    assert model["top_30_uplift"]["points"] > 30
    assert response["top_30_uplift"]["points"] < 15
    assert model["qini_area"] > response["qini_area"]
    assert m["order"] == "event time"
    qini = m["qini"]["uplift_model"]
    assert qini[0] == {"share": 0.0, "incremental_per_100": 0.0} and qini[-1]["share"] == 1.0


def test_the_order_is_drawn_with_the_seed_when_the_log_has_no_times() -> None:
    records = planted_log(300, seed=4)
    for r in records:
        r.ts = None
    a, b, c = (evaluate(records, seed=s).metrics for s in (1, 1, 2))
    assert a == b and a["order"] == "drawn with the seed"
    assert a["scorers"] != c["scorers"]


def test_jsonl_log_round_trips(tmp_path: Path) -> None:
    records = planted_log(500, seed=6)
    path = tmp_path / "log.jsonl"
    campaign_log.write(records, path)
    again = campaign_log.read(path)
    assert [r.to_json() for r in again] == [r.to_json() for r in records]
    assert evaluate(again).metrics == evaluate(records).metrics


@pytest.mark.parametrize("line, message", [
    ('{"campaign": "c", "user_id": "u", "treated": 1, "features": {}, "outcomes": {}}', "treated must be"),
    ('{"campaign": "c", "user_id": "u", "treated": true, "features": {"a": [1]}, "outcomes": {}}', "feature 'a'"),
    ('{"campaign": "c", "user_id": "u", "treated": true, "features": {}}', "missing 'outcomes'"),
    ('not json', "neither"),
])
def test_bad_logs_give_one_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(CampaignLogError, match=message):
        campaign_log.read(path)
    result = replay("--campaign", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


def test_missing_outcome_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    campaign_log.write(planted_log(20, seed=1), path)
    result = replay("--campaign", str(path), "--outcome", "conversion")
    assert result.returncode == 1 and "no outcome 'conversion'" in result.stderr


def test_cli_writes_uplift_and_the_qini_plot(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    campaign_log.write(planted_log(1500, seed=8), path)
    result = replay("--campaign", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "uplift_model" in result.stdout and "top 30 %" in result.stdout
    metrics = orjson.loads((tmp_path / "out" / "metrics.json").read_bytes())
    assert set(metrics["uplift"]["scorers"]) == {"uplift_model", "response_model", "random"}
    offline = metrics["uplift"]["offline"]  # the batch references, computed in the same run
    assert set(offline) == {"two_model_logistic_5fold", "two_model_logistic_in_sample"}
    assert "offline, not prequential: two_model_logistic_5fold" in result.stdout
    report = (tmp_path / "out" / "report.html").read_text()
    assert "Qini curve" in report and "data:image/png;base64," in report
    assert "two_model_logistic_in_sample (offline, not prequential)" in report


@needs_hillstrom
def test_hillstrom_read_as_it_is(tmp_path: Path) -> None:
    records = campaign_log.read(HILLSTROM)
    assert len(records) == 64_000
    assert sum(r.treated for r in records) == 42_694  # both e-mails
    assert {r.variant for r in records if not r.treated} == {"No E-Mail"}
    assert all("segment" not in r.features and "visit" not in r.features for r in records)
    # The same file uncompressed reads the same.
    plain = tmp_path / "hillstrom.csv"
    plain.write_bytes(gzip.decompress(HILLSTROM.read_bytes()))
    assert [r.to_json() for r in campaign_log.read(plain)[:50]] == [r.to_json() for r in records[:50]]


@needs_hillstrom
def test_hillstrom_prequential_uplift_beats_random_and_response() -> None:
    m = evaluate(campaign_log.read(HILLSTROM), seed=1).metrics
    assert abs(m["overall"]["points"] - 6.09) < 0.01
    s = m["scorers"]
    assert s["uplift_model"]["top_30_uplift"]["points"] > s["random"]["top_30_uplift"]["points"] + 1.0
    assert s["uplift_model"]["qini_area"] > s["response_model"]["qini_area"] > s["random"]["qini_area"]
    # The offline two-model reference, cross-fitted in the same run, ranks
    # within about a point of ours; fitted and scored on the same customers
    # (hindsight) it ranks higher than both.
    offline = m["offline"]
    crossed = offline["two_model_logistic_5fold"]["top_30_uplift"]["points"]
    hindsight = offline["two_model_logistic_in_sample"]["top_30_uplift"]["points"]
    assert abs(crossed - s["uplift_model"]["top_30_uplift"]["points"]) < 1.0
    assert hindsight > max(crossed, s["uplift_model"]["top_30_uplift"]["points"])
