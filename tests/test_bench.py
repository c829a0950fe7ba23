"""scripts/bench.py: misuse is refused in one line before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import ROOT


@pytest.mark.parametrize("args, env, message", [
    (["--events", "10"], {}, "--events must be >= 1000"),
    (["--rate", "0"], {}, "--rate and --latency-s must be > 0"),
    (["--latency-warmup-s", "-1"], {}, "--latency-warmup-s must be >= 0"),
    (["--soak", "-5"], {}, "--soak must be > 0 minutes"),
    (["--events", "many"], {}, "invalid int value"),
    (["--bogus"], {}, "unrecognized arguments"),
    ([], {"SHOPSTREAM_PARTITIONS": "four"}, "SHOPSTREAM_PARTITIONS='four' is not a valid int"),
    ([], {"SHOPSTREAM_BROKER": "kafka://kafka.example.com:9092"}, "is not on this machine"),
])
def test_cli_misuse_is_one_line_and_nonzero(args: list[str], env: dict[str, str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )
    assert done.returncode != 0
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
