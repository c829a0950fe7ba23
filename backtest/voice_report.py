"""The voice backtest in metrics.json (``sentiment``, ``intent``, ``text_cost``) and
report.html (its figures and both prequential curves). Next to a replay of
events it adds itself to that run's files; alone it writes its own."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import orjson

from backtest.voice_eval import VoiceRun

BODY_END = "</body>"


def _curve(title: str, timeline: list[dict], series: dict[str, str], reference: dict[str, float],
           peer: dict | None = None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    xs = [p["texts"] for p in timeline]
    for label, key in series.items():
        line = ax.plot(xs, [p[key] for p in timeline], marker=".", label=f"online {label}")[0]
        if key in reference:
            ax.axhline(reference[key], color=line.get_color(), linestyle="--",
                       label=f"offline {label} (5-fold)")
        if peer and isinstance(peer.get(key), float):
            ax.axhline(peer[key], color=line.get_color(), linestyle=":", label=f"snownlp {label}")
    ax.set_xlabel("texts seen (each scored before it is learnt; a point is the latest window)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    png = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{png}'>"


def _rows(name: str, m: dict) -> list[tuple[str, object]]:
    return [(f"{name}.{k}", v) for k, v in m.items() if not isinstance(v, dict)] + [
        (f"{name}.{ref}.{k}", v) for ref in ("offline_reference", "pretrained_peer")
        for k, v in m.get(ref, {}).items()
    ]


def sections(run: VoiceRun) -> list[str]:
    from backtest.report import _table

    m = run.metrics
    rows: list[tuple[str, object]] = []
    out = []
    if "sentiment" in m:
        rows += _rows("sentiment", m["sentiment"])
        if run.sentiment_timeline:
            out.append(_curve("Sentiment over the stream (prequential)", run.sentiment_timeline,
                              {"ROC AUC": "roc_auc", "accuracy": "accuracy"},
                              m["sentiment"].get("offline_reference", {}),
                              m["sentiment"].get("pretrained_peer")))
    if "intent" in m:
        rows += _rows("intent", m["intent"])
        if run.intent_timeline:
            out.append(_curve("Intent accuracy over the stream (prequential)", run.intent_timeline,
                              {"accuracy": "accuracy"}, m["intent"].get("offline_reference", {})))
    rows += [(f"text_cost.{k}", v) for k, v in m.get("text_cost", {}).items()]
    return ["<h2>Customer voice: sentiment and intent</h2>" + _table(rows)] + out


def write(run: VoiceRun, out_dir: Path, sources: list[str], alone: bool = True) -> list[Path]:
    """Writes metrics.json and report.html in ``out_dir``; with ``alone`` false,
    adds to those a replay of events just wrote there."""
    from backtest.report import _page

    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path, report_path = out_dir / "metrics.json", out_dir / "report.html"
    metrics = {} if alone or not metrics_path.exists() else orjson.loads(metrics_path.read_bytes())
    metrics.update(run.metrics)
    metrics_path.write_bytes(orjson.dumps(metrics, option=orjson.OPT_INDENT_2))
    parts = sections(run)
    if not alone and report_path.exists() and BODY_END in (page := report_path.read_text()):
        page = page.replace(BODY_END, "".join(parts) + BODY_END)
    else:
        inputs = "<h2>Texts</h2><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in sources) + "</ul>"
        page = _page("shopstream voice backtest", ["<h1>shopstream voice backtest</h1>", inputs] + parts)
    report_path.write_text(page)
    return [metrics_path, report_path]
