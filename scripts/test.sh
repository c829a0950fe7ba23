#!/usr/bin/env bash
# The whole test suite: installs what it needs, starts its own broker and Redis.
# Two pytest-xdist workers by default (each starts its own broker and Redis):
# most of the slow tests wait on paused or killed services, so two overlap
# well even on two cores. Later options win: `bash scripts/test.sh -n 0 -k x`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest -n "${SHOPSTREAM_TEST_WORKERS:-2}" --dist worksteal "$@"
