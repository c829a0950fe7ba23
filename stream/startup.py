"""Starting a worker while its broker is not there yet.

Faust gives up at once when it cannot reach the broker. A worker started
before its broker (a reboot, a compose file, a broker restart) should wait
instead: :func:`wait_for_broker` blocks until the broker answers, logging one
line, and meanwhile answers ``/health`` on the worker's own port with 503
and the missing dependency, so an orchestrator sees why it is not ready.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from stream.config import Settings
from stream.probes import broker_ready, redis_ready
from stream.health import redact

log = logging.getLogger("shopstream")

RETRY_MAX_S = 10.0


def _health_body(settings: Settings, redis_ok: bool) -> bytes:
    missing = ["broker"] + ([] if redis_ok else ["redis"])
    return json.dumps({
        "status": "unhealthy",
        "missing": missing,
        "broker": {"ok": False, "url": redact(settings.broker), "error": "not reachable yet"},
        "redis": {"ok": redis_ok, "url": redact(settings.redis_url)},
    }).encode()


def _interim_server(settings: Settings, body: list[bytes]) -> ThreadingHTTPServer | None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body[0])

        def log_message(self, *args: object) -> None:
            return None

    try:
        server = ThreadingHTTPServer((settings.web_host, settings.web_port), Handler)
    except OSError as exc:
        log.warning("cannot serve /health on %s:%s while waiting: %s",
                    settings.web_host, settings.web_port, exc)
        return None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def wait_for_broker(settings: Settings) -> None:
    """Return once the broker answers a metadata request."""
    options = settings.kafka_options()
    if broker_ready(settings.bootstrap_servers, timeout=3.0, options=options):
        return
    log.warning("broker unavailable at %s: waiting for it (see /health)", redact(settings.broker))
    body = [_health_body(settings, redis_ready(settings.redis_url, timeout=1.0))]
    server = _interim_server(settings, body)
    delay = 0.5
    try:
        while not broker_ready(settings.bootstrap_servers, timeout=2.0, options=options):
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
            body[0] = _health_body(settings, redis_ready(settings.redis_url, timeout=1.0))
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    log.info("broker available at %s", redact(settings.broker))
