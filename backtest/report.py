"""What a backtest leaves behind: metrics.json, users.jsonl, alerts.jsonl and
report.html, one self-contained HTML page with figures and plots."""

from __future__ import annotations

import base64
import html
import io
import math
from datetime import datetime, timezone
from pathlib import Path

import orjson

from backtest.replay import ReplayConfig, ReplayResult
from backtest.uplift_eval import UpliftRun

MIN_POINTS = 20


def _plot(title: str, ylabel: str, rows: list[dict], series: dict[str, object],
          ylim: tuple[float, float] | None = None) -> tuple[str, str]:
    """One line chart over event time: ``series`` maps a label (None for a
    single unlabelled line) to a function of a timeline row. Returns
    (title, base64 PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = [datetime.fromtimestamp(r["ts"], tz=timezone.utc) for r in rows]
    fig, ax = plt.subplots(figsize=(8, 3))
    for label, value in series.items():
        ys = [value(r) for r in rows]  # type: ignore[operator]
        ax.plot(times, [math.nan if y is None else y for y in ys], marker=".", label=label)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    if len(series) > 1:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return title, base64.b64encode(buf.getvalue()).decode("ascii")


def _alert_plots(days: list[dict]) -> list[tuple[str, str]]:
    plots = []
    kinds = sorted({k for d in days for k in d["kinds"]})
    if kinds:
        plots.append(_plot("Alerts per day of event time", "alerts", days,
                           {k: (lambda d, k=k: d["kinds"].get(k, 0)) for k in kinds}))
    rated = [d for d in days if not math.isnan(d["fraud_alert_rate"])]
    judged = [d for d in days if not math.isnan(d["fraud_precision"])]
    if rated:
        series = {"fraud alerts per purchase": lambda d: d["fraud_alert_rate"]}
        if judged:
            series["precision of fraud alerts"] = lambda d: d["fraud_precision"]
        plots.append(_plot("Fraud alerts: rate and precision per day", "share", rated, series,
                           ylim=(0, 1)))
    return plots


def _plots(timeline: list[dict], models: list[dict]) -> list[tuple[str, str]]:
    plots = []
    # A slice with a handful of points says nothing; keep the rest.
    scored = [t for t in timeline if t["points"] >= MIN_POINTS]
    if scored:
        plots.append(_plot("Next-item accuracy over event time", "per time slice", scored,
                           {"HR@20": lambda t: t["HR@20"], "MRR@20": lambda t: t["MRR@20"]},
                           ylim=(0, 1)))
        plots.append(_plot("Recommendation coverage (cumulative)", "distinct items recommended",
                           scored, {None: lambda t: t["items_recommended"]}))
    speed = [t for t in timeline if not math.isnan(t["events_per_s"])]
    if speed:
        plots.append(_plot("Replay throughput over event time", "events/s", speed,
                           {None: lambda t: t["events_per_s"]}))
    labelled = [t for t in models if t.get("n")]
    if labelled:
        plots.append(_plot("Purchase propensity: ROC AUC, calibration error, log loss",
                           "prequential, cumulative", labelled,
                           {name: (lambda t, n=name: t[n]) for name in ("roc_auc", "ece", "log_loss")}))
    sized = [t for t in models if t.get("sizes")]
    if sized:
        k = max(len(t["sizes"]) for t in sized)
        plots.append(_plot("Segment sizes over event time", "users (recent memory)", sized,
                           {f"segment {i}": (lambda t, i=i: t["sizes"][i] if i < len(t["sizes"]) else 0)
                            for i in range(k)}))
    return plots


def _qini_plot(uplift: dict) -> tuple[str, str]:
    """The Qini curves of the scorers of a campaign backtest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    labels = {"uplift_model": "uplift model", "response_model": "response model (P(outcome))",
              "random": "random order",
              "two_model_logistic_5fold": "offline two-model logistic, 5-fold",
              "two_model_logistic_in_sample": "offline two-model logistic, in sample (hindsight)"}
    for name, curve in uplift["qini"].items():
        offline = name in uplift.get("offline", {})
        ax.plot([100 * c["share"] for c in curve], [c["incremental_per_100"] for c in curve],
                marker="" if offline else ".", linestyle="--" if offline else "-",
                label=labels.get(name, name))
    end = uplift["qini"]["random"][-1]["incremental_per_100"]
    ax.plot([0, 100], [0, end], color="grey", linestyle=":", label="treating at random")
    ax.axvline(100 * uplift["top_share"], color="grey", alpha=0.4)
    ax.set_xlabel("customers targeted, best first (%)")
    ax.set_ylabel(f"incremental {uplift['outcome']} per 100 customers")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    title = f"Qini curve: {', '.join(uplift['campaigns'])}, outcome {uplift['outcome']}, seed {uplift['seed']}"
    return title, base64.b64encode(buf.getvalue()).decode("ascii")


def _uplift_section(uplift: dict) -> str:
    o = uplift["overall"]
    rows: list[tuple[str, object]] = [
        ("customers", f"{uplift['customers']:,} ({o['treated']:,} treated, {o['held_out']:,} held out)"),
        ("order", f"{uplift['order']} (seed {uplift['seed']})"),
        ("overall uplift", f"{o['points']:.2f} points (95 % {o['low']:.2f} to {o['high']:.2f})"),
    ]
    for name, sc in uplift["scorers"].items():
        top = sc["top_30_uplift"]
        rows.append((f"{name}: uplift in the top 30 %",
                     f"{top['points']:.2f} points (95 % {top['low']:.2f} to {top['high']:.2f}); "
                     f"second half of the order {sc['top_30_uplift_second_half']['points']:.2f}; "
                     f"Qini area {sc['qini_area']:.3f}"))
    for name, sc in uplift.get("offline", {}).items():
        top = sc["top_30_uplift"]
        rows.append((f"{name} (offline, not prequential): uplift in the top 30 %",
                     f"{top['points']:.2f} points (95 % {top['low']:.2f} to {top['high']:.2f}); "
                     f"Qini area {sc['qini_area']:.3f}"))
    title, png = _qini_plot(uplift)
    return ("<h2>Uplift (prequential: each customer scored before their outcome is learnt)</h2>"
            + _table(rows)
            + f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{png}'>")


def _campaigns_plot(rows: list[dict]) -> tuple[str, str]:
    """Incremental conversions per 100 treated, with their 95 % interval, per
    campaign and segment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['campaign']} · {r['segment']}" for r in rows]
    points = [r["uplift_points"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.35 * len(rows)))
    ys = list(range(len(rows)))
    ax.errorbar([p["value"] for p in points], ys, fmt="o",
                xerr=[[p["value"] - p["low"] for p in points], [p["high"] - p["value"] for p in points]])
    ax.axvline(0, color="grey", alpha=0.5)
    ax.set_yticks(ys, labels, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel("conversion, treated minus held out (points; 95 % interval)")
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "Campaigns: uplift in conversion", base64.b64encode(buf.getvalue()).decode("ascii")


def _campaigns_section(rows: list[dict]) -> str:
    """Treated against held out per action kind, campaign and segment."""
    table: list[tuple[str, object]] = []
    compared = []
    for r in rows:
        t, h = r["treated"], r["held_out"]
        name = f"{r['kind']} {r['campaign']}, segment {r['segment']}"
        if "uplift_points" not in r:
            table.append((name, f"{t['n']:,} treated, {h['n']:,} held out: no comparison yet"))
            continue
        compared.append(r)
        inc, rev = r["incremental_conversions"], r["incremental_revenue"]
        cost = f"; cost {r['cost']:,.2f}" if "cost" in r else ""
        table.append((name, f"{t['n']:,} treated ({t['conversion']:.2%} bought, {t['revenue_per_user']:.2f} "
                            f"per user) vs {h['n']:,} held out ({h['conversion']:.2%}, "
                            f"{h['revenue_per_user']:.2f}): +{inc['value']:,.1f} conversions "
                            f"(95 % {inc['low']:,.1f} to {inc['high']:,.1f}), revenue "
                            f"{rev['value']:+,.2f} ({rev['low']:,.2f} to {rev['high']:,.2f}){cost}; "
                            f"{r['open']:,} windows still open"))
    out = "<h2>Campaigns: treated against held out</h2>" + _table(table)
    if compared:
        title, png = _campaigns_plot(compared)
        out += f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{png}'>"
    return out


    series = demand.get("h1_series")
    if not series:
        return []
    days = series["days"]
    x = list(range(len(days)))
    ticks = x[::7]
    out = []
    panels = [("all scored products", series["aggregate"])] + list(series["items"].items())
    for name, s in panels:
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.plot(x, s["actual"], color="black", marker=".", linewidth=0.8, label="actual")
        ax.plot(x, s["expected"], color="tab:blue", label="expected (next day)")
        if "low" in s:
            ax.fill_between(x, s["low"], s["high"], color="tab:blue", alpha=0.2, label="80 % interval")
            ax.plot(x, s["median"], color="tab:orange", linestyle="--", label="median")
        ax.set_xticks(ticks, [days[i] for i in ticks], rotation=30, fontsize="small")
        ax.set_ylabel("units")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        out.append((f"Demand, forecast vs actual: {name}", base64.b64encode(buf.getvalue()).decode("ascii")))
    return out


def _demand_plots(demand: dict) -> list[tuple[str, str]]:
    """Next-day forecasts against actual units: the scored products together, then the top items."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = demand.get("h1_series")
    if not series:
        return []
    days = series["days"]
    x = list(range(len(days)))
    ticks = x[::7]
    out = []
    panels = [("all scored products", series["aggregate"])] + list(series["items"].items())
    for name, s in panels:
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.plot(x, s["actual"], color="black", marker=".", linewidth=0.8, label="actual")
        ax.plot(x, s["expected"], color="tab:blue", label="expected (next day)")
        if "low" in s:
            ax.fill_between(x, s["low"], s["high"], color="tab:blue", alpha=0.2, label="80 % interval")
            ax.plot(x, s["median"], color="tab:orange", linestyle="--", label="median")
        ax.set_xticks(ticks, [days[i] for i in ticks], rotation=30, fontsize="small")
        ax.set_ylabel("units")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        out.append((f"Demand, forecast vs actual: {name}", base64.b64encode(buf.getvalue()).decode("ascii")))
    return out


def _demand_section(demand: dict) -> str:
    if "skipped" in demand:
        return "<h2>Demand</h2>" + _table([("not scored", demand["skipped"])])
    rows: list[tuple[str, object]] = []
    for name, f in demand["forecasters"].items():
        rows.append((name, "  ".join(f"{k} {v}" for k, v in f.items() if k != "per_horizon")))
    parts = ["<h2>Demand (online-retail protocol)</h2>" + _table(rows)]
    for title, png in _demand_plots(demand):
        parts.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{png}'>")
    return "".join(parts)


def _page(title: str, sections: list[str]) -> str:
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
        "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.2em .6em;text-align:left}"
        "th{background:#f4f4f4;font-weight:normal}.lead{font-size:1.3em}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(sections)}</body></html>"
    )


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


def render(result: ReplayResult, inputs: list[str]) -> str:
    m = result.metrics
    ni = m["next_item"]
    headline = (
        f"HR@20 {ni['HR@20']:.4f} · MRR@20 {ni['MRR@20']:.4f} over {ni['points']:,} "
        f"prediction points ({m['mode']})"
    )
    sections = [
        f"<h1>shopstream backtest</h1><p class='lead'>{html.escape(headline)}</p>",
        "<h2>Inputs</h2><ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in inputs) + "</ul>",
        "<h2>Figures</h2>" + _table(_flatten({k: v for k, v in m.items()
                                              if k not in ("segments", "uplift", "campaigns", "demand")})),
    ]
    if m.get("campaigns"):
        sections.append(_campaigns_section(m["campaigns"]))
    if m.get("uplift"):
        sections.append(_uplift_section(m["uplift"]))
    if m.get("demand"):
        sections.append(_demand_section(m["demand"]))
    for title, png in _plots(result.timeline, result.models_timeline) + _alert_plots(result.alerts_timeline):
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
    return _page("shopstream backtest", sections)


def write(result: ReplayResult, out_dir: Path, config: ReplayConfig) -> list[Path]:
    """metrics.json, users.jsonl, alerts.jsonl, actions.jsonl, report.html (+ scores.jsonl, dead_letters.jsonl)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def put(name: str, data: bytes) -> None:
        path = out_dir / name
        path.write_bytes(data)
        written.append(path)

    put("metrics.json", orjson.dumps(result.metrics, option=orjson.OPT_INDENT_2))
    put("users.jsonl", b"".join(orjson.dumps(u) + b"\n" for u in result.users))
    if config.scores:
        put("scores.jsonl", b"".join(orjson.dumps(s) + b"\n" for s in result.scores))
    put("alerts.jsonl", b"".join(orjson.dumps(a) + b"\n" for a in result.alerts))
    put("actions.jsonl", b"".join(orjson.dumps(a) + b"\n" for a in result.actions))
    if result.dead_letters:
        put("dead_letters.jsonl", b"".join(orjson.dumps(d) + b"\n" for d in result.dead_letters))
    put("report.html", render(result, [str(p) for p in config.inputs]).encode())
    return written


def render_campaign(uplift: dict, source: str) -> str:
    top = uplift["scorers"]["uplift_model"]["top_30_uplift"]
    headline = (f"uplift in the top 30 % {top['points']:.2f} points (overall "
                f"{uplift['overall']['points']:.2f}) over {uplift['customers']:,} customers")
    return _page("shopstream campaign backtest", [
        f"<h1>shopstream campaign backtest</h1><p class='lead'>{html.escape(headline)}</p>",
        f"<h2>Campaign log</h2><ul><li>{html.escape(source)}</li></ul>",
        _uplift_section(uplift),
    ])


def write_campaign(run: UpliftRun, out_dir: Path, source: Path) -> list[Path]:
    """metrics.json (``uplift``) and report.html of a campaign backtest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics, report = out_dir / "metrics.json", out_dir / "report.html"
    metrics.write_bytes(orjson.dumps({"uplift": run.metrics}, option=orjson.OPT_INDENT_2))
    report.write_text(render_campaign(run.metrics, str(source)))
    return [metrics, report]
