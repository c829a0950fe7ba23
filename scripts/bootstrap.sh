#!/usr/bin/env bash
# Install shopstream into ./.venv (once, and again when pyproject.toml changes).
# Sourced by demo.sh and test.sh; safe to run on its own.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.installed"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "bootstrap: $PYTHON not found; shopstream needs Python 3.11+" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "bootstrap: shopstream needs Python 3.11+, $PYTHON is $("$PYTHON" -V 2>&1)" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
# Again too when a compiled kernel's source changes: the install builds them.
kernels_changed() {
    local pyx
    for pyx in "$ROOT"/models/*.pyx "$ROOT"/models/*.pxd "$ROOT"/stream/*.pyx; do
        [ "$pyx" -nt "$STAMP" ] && return 0
    done
    return 1
}
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ] || [ "$ROOT/setup.py" -nt "$STAMP" ] \
        || kernels_changed; then
    echo "bootstrap: installing shopstream and its dependencies (about a minute the first time)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[dev]"
    touch "$STAMP"
fi
# Redis: the tests and the dev stack start redis-server when none answers.
if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "bootstrap: installing redis-server (apt-get)"
        (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null
    else
        echo "bootstrap: redis-server is not installed: apt-get install redis-server (or brew install redis)" >&2
        exit 1
    fi
fi
