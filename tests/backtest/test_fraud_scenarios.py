"""Issue 21's fraud bars through the real replay, on both planted scenarios.

Cards (``produce.py --scenario cards``: each card seen once, 0.2 % fraud
visible only in ``attrs``, outcomes 6 h late): ROC AUC >= .95 and average
precision >= .60 over the whole stream, and in the first 6 hours (the
detector alone) no worse than river's HalfSpaceTrees scored in the same run.
The former fixed mean of detector and classifier scored .937 / .613 here, the
classifier alone about .90-.93: either fails. The planted shop (outcomes a day
late) keeps its figures with the same blend.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.support import ROOT


def produce_and_replay(tmp_path: Path, *produce_args: str) -> dict:
    events, labels = tmp_path / "events.jsonl", tmp_path / "labels.jsonl"
    made = subprocess.run([sys.executable, str(ROOT / "scripts" / "produce.py"), *produce_args,
                           "--out", str(events), "--labels", str(labels)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "replay.py"), "--quiet",
                           "--input", str(events), "--labels", str(labels), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr
    assert "fraud HalfSpaceTrees baseline, first 6 hours" in done.stdout or "cards" not in produce_args
    return orjson.loads((tmp_path / "out" / "metrics.json").read_bytes())["fraud"]


@pytest.mark.slow
def test_cards_the_classifier_takes_over_and_the_first_hours_beat_halfspacetrees(tmp_path: Path) -> None:
    fraud = produce_and_replay(tmp_path, "--scenario", "cards", "--count", "100000", "--seed", "42")
    whole, first, hst = fraud["all"], fraud["first_hours"], fraud["hst_baseline"]
    assert whole["fraud"] == 200 and whole["purchases"] == 100_000
    assert whole["roc_auc"] >= 0.95 and whole["average_precision"] >= 0.60, fraud
    assert first["hours"] == 6.0 and first["fraud"] >= 20
    assert first["roc_auc"] >= hst["first_hours"]["roc_auc"], fraud
    assert first["average_precision"] >= hst["first_hours"]["average_precision"], fraud
    # Once outcomes flow the blend is fitted and the classifier carries weight;
    # the alert threshold still alerts on about 1 % of purchases.
    assert fraud["blend"]["fitted"] and fraud["blend"]["classifier"] > 0.3, fraud["blend"]
    assert fraud["after_labels"]["average_precision"] > fraud["without_labels"]["average_precision"] + 0.15
    assert 0.007 <= fraud["alert_share"] <= 0.015, fraud


@pytest.mark.slow
def test_planted_shop_keeps_its_fraud_figures_with_the_blend(tmp_path: Path) -> None:
    fraud = produce_and_replay(tmp_path, "--count", "100000", "--seed", "7")
    assert fraud["all"]["roc_auc"] >= 0.96 and fraud["all"]["average_precision"] >= 0.75, fraud
    assert fraud["after_labels"]["roc_auc"] >= 0.97, fraud
    assert fraud["blend"]["fitted"] and fraud["blend"]["classifier"] > 0.3, fraud["blend"]
    assert fraud["all"]["roc_auc"] > fraud["hst_baseline"]["all"]["roc_auc"], fraud
    assert fraud["all"]["average_precision"] > fraud["hst_baseline"]["all"]["average_precision"], fraud
