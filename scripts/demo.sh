#!/usr/bin/env bash
# shopstream on its embedded default: installs itself, starts a local broker
# and Redis, a worker, synthetic shop traffic, and shows recommendations and
# alerts flowing. Ctrl-C stops the worker and the traffic (the stack stays up:
# `python scripts/dev_stack.py down` stops it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
PY="$ROOT/.venv/bin/python"
RUN="$ROOT/.dev"
mkdir -p "$RUN"
export SHOPSTREAM_BROKER="${SHOPSTREAM_BROKER:-kafka://127.0.0.1:9092}"
export SHOPSTREAM_REDIS_URL="${SHOPSTREAM_REDIS_URL:-redis://127.0.0.1:6379/0}"
export SHOPSTREAM_WEB_PORT="${SHOPSTREAM_WEB_PORT:-6066}"
export SHOPSTREAM_REC_THROTTLE_S="${SHOPSTREAM_REC_THROTTLE_S:-30}"
TOPIC="${SHOPSTREAM_TOPIC_RECOMMENDATIONS:-recommendations}"

echo "demo: starting the local broker and Redis (Apache Kafka where Java 17+ is installed; the first start fetches its jars)"
"$PY" scripts/dev_stack.py up

# The demo starts from a clean slate under its own key prefix: its state in
# Redis must not count offsets of topics an earlier broker had (Tansu keeps
# nothing across a restart; Kafka's log in .dev/ can be deleted).
export SHOPSTREAM_PREFIX="${SHOPSTREAM_PREFIX:-demo:}"
"$PY" - <<PYEOF
import redis
r = redis.Redis.from_url("$SHOPSTREAM_REDIS_URL")
keys = list(r.scan_iter(match="${SHOPSTREAM_PREFIX}*", count=1000))
for i in range(0, len(keys), 1000):
    r.delete(*keys[i : i + 1000])
print(f"demo: cleared {len(keys)} keys under ${SHOPSTREAM_PREFIX} in Redis")
PYEOF

pids=()
cleanup() {
    trap - INT TERM EXIT PIPE
    # Stop the children first: if the demo's output went to a pipe that has
    # closed (demo.sh | head), printing below would end this script.
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo
    echo "demo: stopped worker and traffic (the stack stays up: python scripts/dev_stack.py down)"
}
trap cleanup INT TERM EXIT PIPE

echo "demo: starting the worker (log: .dev/worker.log)"
"$ROOT/.venv/bin/faust" -A stream.app worker -l info >"$RUN/worker.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
    if "$PY" - <<PYEOF 2>/dev/null
import json, sys, urllib.request
body = json.load(urllib.request.urlopen("http://127.0.0.1:${SHOPSTREAM_WEB_PORT}/health", timeout=1))
sys.exit(body["status"] != "ok")
PYEOF
    then break; fi
    if ! kill -0 "${pids[0]}" 2>/dev/null; then
        echo "demo: the worker exited; last lines of .dev/worker.log:" >&2
        tail -n 20 "$RUN/worker.log" >&2
        exit 1
    fi
    sleep 0.5
done
echo "demo: worker healthy at http://127.0.0.1:${SHOPSTREAM_WEB_PORT}/health"

echo "demo: synthetic shop traffic at 200 events/s (log: .dev/produce.log)"
"$PY" scripts/produce.py --count 1000000 --rate 200 --seed "${SEED:-42}" >"$RUN/produce.log" 2>&1 &
pids+=($!)

sleep 5
# Show a user whose list comes from co-occurrence (items with a "because"),
# not one who has only popular items yet.
user="$("$PY" scripts/tail.py "$TOPIC" --count 20 --timeout 30 --json 2>/dev/null | "$PY" -c '
import json, sys
recs = [json.loads(line) for line in sys.stdin if line.strip()]
best = next((r for r in recs if any(i["because"] for i in r["items"])), recs[0] if recs else None)
print(best["user_id"] if best else "")' 2>/dev/null || true)"
if [ -n "$user" ]; then
    echo "demo: GET /recommendations/$user"
    "$PY" - "http://127.0.0.1:${SHOPSTREAM_WEB_PORT}/recommendations/$user" <<'PYEOF' || true
import json, sys, urllib.request
recs = json.load(urllib.request.urlopen(sys.argv[1], timeout=5))
print(f"  user {recs['user_id']} after event {recs['event_id']}:")
for item in recs["items"][:5]:
    print(f"    {item['item_id']:>8}  score {item['score']:.3f}  because {', '.join(item['because']) or '(popular)'}")
PYEOF
fi
echo "demo: alerts (lines with ALERT) and recommendations as they are published (Ctrl-C to stop):"
"$PY" scripts/tail.py "${SHOPSTREAM_TOPIC_ALERTS:-alerts}" --latest &
pids+=($!)
"$PY" scripts/tail.py "$TOPIC" --latest
