"""The backtest report: one self-contained HTML page with figures and plots."""

from __future__ import annotations

import base64
import html
import io
import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.replay import ReplayResult

MIN_POINTS = 20


def _png(fig) -> str:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(timeline: list[dict]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = [datetime.fromtimestamp(t["ts"], tz=timezone.utc) for t in timeline]
    plots = []
    # A slice with a handful of points says nothing; keep the rest.
    scored = [(x, t) for x, t in zip(times, timeline) if t["points"] >= MIN_POINTS]
    if scored:
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.plot([x for x, _ in scored], [t["HR@20"] for _, t in scored], marker=".", label="HR@20")
        ax.plot([x for x, _ in scored], [t["MRR@20"] for _, t in scored], marker=".", label="MRR@20")
        ax.set_ylim(0, 1)
        ax.set_ylabel("per time slice")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.autofmt_xdate()
        plots.append(("Next-item accuracy over event time", _png(fig)))
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.plot([x for x, _ in scored], [t["items_recommended"] for _, t in scored], marker=".")
        ax.set_ylabel("distinct items recommended")
        ax.grid(alpha=0.3)
        fig.autofmt_xdate()
        plots.append(("Recommendation coverage (cumulative)", _png(fig)))
        plt.close(fig)
    speed = [(x, t["events_per_s"]) for x, t in zip(times, timeline) if not math.isnan(t["events_per_s"])]
    if speed:
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.plot([x for x, _ in speed], [v for _, v in speed], marker=".", color="tab:green")
        ax.set_ylabel("events/s")
        ax.grid(alpha=0.3)
        fig.autofmt_xdate()
        plots.append(("Replay throughput over event time", _png(fig)))
        plt.close(fig)
    return plots


def _model_plots(timeline: list[dict]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [t for t in timeline if t.get("n")]
    plots = []
    if points:
        times = [datetime.fromtimestamp(t["ts"], tz=timezone.utc) for t in points]
        fig, ax = plt.subplots(figsize=(8, 3))
        for name in ("roc_auc", "ece", "log_loss"):
            ax.plot(times, [t[name] if t[name] is not None else math.nan for t in points],
                    marker=".", label=name)
        ax.set_ylabel("prequential, cumulative")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.autofmt_xdate()
        plots.append(("Purchase propensity: ROC AUC, calibration error, log loss", _png(fig)))
        plt.close(fig)
    sized = [t for t in timeline if t.get("sizes")]
    if sized:
        times = [datetime.fromtimestamp(t["ts"], tz=timezone.utc) for t in sized]
        fig, ax = plt.subplots(figsize=(8, 3))
        for k in range(max(len(t["sizes"]) for t in sized)):
            ax.plot(times, [t["sizes"][k] if k < len(t["sizes"]) else 0 for t in sized],
                    label=f"segment {k}")
        ax.set_ylabel("users (recent memory)")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
        fig.autofmt_xdate()
        plots.append(("Segment sizes over event time", _png(fig)))
        plt.close(fig)
    return plots


def _table(rows: list[tuple[str, object]]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{body}</table>"


def _flatten(doc: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in doc.items():
        if isinstance(value, dict):
            rows += _flatten(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def render(result: "ReplayResult", inputs: list[str]) -> str:
    m = result.metrics
    ni = m["next_item"]
    headline = (
        f"HR@20 {ni['HR@20']:.4f} · MRR@20 {ni['MRR@20']:.4f} over {ni['points']:,} "
        f"prediction points ({m['mode']})"
    )
    sections = [
        f"<h1>shopstream backtest</h1><p class='lead'>{html.escape(headline)}</p>",
        "<h2>Inputs</h2><ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in inputs) + "</ul>",
        "<h2>Figures</h2>" + _table(_flatten({k: v for k, v in m.items() if k != "segments"})),
    ]
    for title, png in _plots(result.timeline) + _model_plots(result.models_timeline):
        sections.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{png}'>")
    if m.get("segments"):
        sections.append("<h2>Segments</h2>" + _table(
            [(f"{s['segment']}: {s['name']}", f"{s['description']} ({s['size']} users)") for s in m["segments"]]
        ))
    if result.dead_letters:
        reasons: dict[str, int] = {}
        for d in result.dead_letters:
            reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
        sections.append("<h2>Dead letters</h2>" + _table(sorted(reasons.items(), key=lambda kv: -kv[1])))
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
        "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.2em .6em;text-align:left}"
        "th{background:#f4f4f4;font-weight:normal}.lead{font-size:1.3em}img{max-width:100%}"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>shopstream backtest</title>"
        f"<style>{style}</style></head><body>{''.join(sections)}</body></html>"
    )
