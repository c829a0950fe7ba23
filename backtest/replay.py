"""Backtesting: recorded events through the very Processor the worker runs.

Events of one or more files go in event-time order, in batches, through
:class:`~stream.processor.Processor` against in-memory state (or Redis).
Prequential: for every evaluated event the user's recommendations are taken
*before* the event is learned, then the event is learned (or, frozen, only
moves its user's session on).
"""

from __future__ import annotations

import asyncio
import gc
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import orjson

from models.cooccurrence import COMPILED
from models.metrics import NextItemMetrics
from backtest.alert_metrics import (
    Purchase,
    alert_counts,
    alert_timeline,
    churn_metrics,
    fraud_metrics,
)
from stream import campaigns
from stream.config import Settings
from stream.events import HISTORY_MIN_TS, Event, InvalidEvent, Label, label_from_dict
from stream.learner import FRAUD, Learner, UserModels
from stream.actions import Action
from stream.outputs import Alert, Message
from stream.processor import Prediction, Processor
from backtest.fraud_baseline import HstBaseline
from backtest.repeat_ranking import repeat_ranking
from backtest.sources import Record, SourceError, merge_records
from stream.state import MemoryState, State

REPLAY_TOPIC = "replay"
TIMELINE_BUCKETS = 48
TIMELINE_EVERY = 5  # batches between two points of the model metrics' timeline


class ReplayError(ValueError):
    """A replay that cannot run as asked (one-line message)."""


@dataclass
class ReplayConfig:
    inputs: list[Path]
    eval_from: float | Path | None = None  # a time, or one of the inputs
    freeze_at_eval: bool = False
    redis_url: str | None = None
    scores: bool = False
    as_of: float | None = None
    truth: Path | None = None  # what a synthetic shop planted (produce.py --truth)
    labels: Path | None = None  # confirmed fraud outcomes, merged in at their own time
    batch_size: int = 1000
    progress: bool = True
    settings: Settings = field(default_factory=Settings.from_env)


@dataclass
class Bucket:
    """Accuracy and speed over one slice of event time."""

    start: float
    points: int = 0
    hits20: int = 0
    rr20: float = 0.0
    items: set[str] = field(default_factory=set)
    events: int = 0
    seconds: float = 0.0


@dataclass
class ReplayResult:
    metrics: dict
    users: list[dict]
    timeline: list[dict]
    dead_letters: list[dict]
    scores: list[dict]
    models_timeline: list[dict] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)
    actions: list[dict] = field(default_factory=list)
    alerts_timeline: list[dict] = field(default_factory=list)


class _Selector:
    """Which events are evaluated: from a time on, or those of one file."""

    def __init__(self, config: ReplayConfig) -> None:
        self.time: float | None = None
        self.source: int | None = None
        ev = config.eval_from
        if isinstance(ev, Path):
            resolved = [p.resolve() for p in config.inputs]
            if ev.resolve() not in resolved:
                raise ReplayError(f"--eval-from {ev} is not one of the --input files")
            self.source = resolved.index(ev.resolve())
        elif ev is not None:
            self.time = float(ev)
        self.ids: set[str] = set()

    def note(self, record: Record) -> None:
        if record.event is not None and self.source is not None and record.source == self.source:
            self.ids.add(record.event.event_id)

    def __call__(self, event: Event) -> bool:
        if self.source is not None:
            return event.event_id in self.ids
        if self.time is not None:
            return event.ts >= self.time
        return True


def load(config: ReplayConfig) -> list[Record]:
    if not config.inputs:
        raise ReplayError("no --input given")
    try:
        records = list(merge_records(config.inputs))
    except SourceError as exc:
        raise ReplayError(str(exc)) from None
    if not any(r.event is not None for r in records):
        raise ReplayError("the inputs hold no valid event")
    return records


def _state(config: ReplayConfig) -> State:
    if config.redis_url is None:
        return MemoryState(config.settings)
    from dataclasses import replace

    from stream.redis_cluster import open_state

    return open_state(replace(config.settings, redis_url=config.redis_url))


def _batches(records: Sequence[Record], size: int, cut: float | None) -> Iterator[list[Record]]:
    """Batches of ``size``, also cut where event time first reaches ``cut``."""
    batch: list[Record] = []
    for record in records:
        if cut is not None and record.event is not None and record.event.ts >= cut:
            if batch:
                yield batch
                batch = []
            yield []  # the marker: everything before ``cut`` is done
            cut = None
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def load_labels(path: Path) -> tuple[list[Label], list[dict]]:
    """Outcomes of a labels JSONL file in time order, and its bad lines (with reasons)."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc.strerror or exc}") from None
    labels, bad = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            labels.append(label_from_dict(orjson.loads(line), HISTORY_MIN_TS))
        except (orjson.JSONDecodeError, InvalidEvent) as exc:
            reason = exc.reason if isinstance(exc, InvalidEvent) else f"not valid JSON: {exc}"
            bad.append({"source": str(path), "line": number, "reason": reason[:300],
                        "original": line[:1000].decode("utf-8", "replace")})
    labels.sort(key=lambda label: label.ts)
    return labels, bad


async def _users(state: State, learner: Learner, now: float, processor: Processor) -> list[dict]:
    """Every user's profile, segment, propensity and churn risk as of event time ``now``."""
    names = {p["segment"]: p["name"] for p in learner.segments.profiles()}
    users = []
    async for profile in state.all_profiles():
        row = profile.summary()
        row["features"] = x = profile.features.values(now)
        # Placed again against the final centroids (hysteresis from the stored one).
        segment = learner.segments.assign(x, profile.segment)
        row["segment"] = segment
        row["segment_name"] = names.get(segment) if segment is not None else None
        p = learner.propensity.predict_one(x)
        row["propensity"] = round(p, 6) if p is not None else None
        row["churn_risk"] = round(processor.alerts.churn_risk(profile, now), 6)
        users.append(row)
    return sorted(users, key=lambda u: u["user_id"])


async def run(config: ReplayConfig) -> ReplayResult:
    records = load(config)
    selector = _Selector(config)
    for record in records:
        selector.note(record)
    labels, bad_labels = load_labels(config.labels) if config.labels else ([], [])
    state = _state(config)
    learner = Learner.for_settings(config.settings)
    processor = Processor(
        state,
        config.settings,
        evaluate=(lambda e: True) if config.scores else selector,
        learn=(lambda e: not selector(e)) if config.freeze_at_eval else None,
        publish_recommendations=config.redis_url is not None,
        # In-process, ingest scores with the learner's live models: the
        # snapshot a worker would load, without the snapshot delay.
        models=UserModels(segments=learner.segments, propensity=learner.propensity,
                          fraud=learner.fraud, uplift=learner.offers.model,
                          offer_thresholds=learner.offers.thresholds),
        collect_scores=config.scores,
    )
    span_start = next(r.event.ts for r in records if r.event is not None)
    span_end = max(r.event.ts for r in records if r.event is not None)
    width = max((span_end - span_start) / TIMELINE_BUCKETS, 60.0)
    buckets: dict[int, Bucket] = {}
    metrics = NextItemMetrics()
    catalogue: set[str] = set()
    recommended: set[str] = set()
    lists = fallback_lists = items_total = fallback_items = 0
    counts = {"read": len(records), "processed": 0, "dead_lettered": 0, "duplicates": 0,
              "already_applied": 0, "labels": len(labels), "labels_dead_lettered": len(bad_labels)}
    dead: list[dict] = list(bad_labels)
    scores: list[dict] = []
    alerts: list[Alert] = []
    actions: list[Action] = []
    purchases: list[Purchase] = []
    baseline = HstBaseline()
    next_label = 0
    users_as_of: list[dict] | None = None
    predict_seconds = 0.0
    progress = _progress(len(records), config.progress)
    offset = 0
    batch_no = 0
    started = time.perf_counter()
    try:
        for batch in _batches(records, config.batch_size, config.as_of):
            if not batch:
                users_as_of = await _users(state, learner, config.as_of or 0.0, processor)
                continue
            messages = []
            for record in batch:
                value = None if record.event is not None else record.raw
                messages.append(Message(value, REPLAY_TOPIC, 0, offset))
                offset += 1
            t0 = time.perf_counter()
            result = await processor.handle(messages, events=[r.event for r in batch])
            seconds = time.perf_counter() - t0
            # The state is a mass of small acyclic objects: keep the cyclic GC
            # from re-scanning it after every batch (it halves the speed).
            gc.freeze()
            for key in ("processed", "duplicates", "already_applied"):
                counts[key] += getattr(result, key)
            counts["dead_lettered"] += len(result.dead_letters)
            learner.learn(result.model_rows)
            # Outcomes reach the learner once the stream has passed their time.
            batch_end = max((r.event.ts for r in batch if r.event is not None), default=0.0)
            start = next_label
            while next_label < len(labels) and labels[next_label].ts <= batch_end:
                next_label += 1
            learner.learn_labels(labels[start:next_label])
            processor.models.fraud_threshold = learner.alert_rate.threshold
            alerts.extend(result.alerts)
            actions.extend(result.actions)
            purchases.extend((r.event_id, r.order_id, r.ts, r.p or 0.0, r.anomaly or 0.0,
                              baseline.score_then_learn(r.x or {}))
                             for r in result.model_rows if r.kind == FRAUD)
            if batch_no % TIMELINE_EVERY == 0:
                learner.record()
            batch_no += 1
            dead.extend(d.to_dict() for d in result.dead_letters)
            for r in batch:
                if r.event is not None:
                    catalogue.add(r.event.item_id)
            ranks = {p.event.event_id: _rank(p) for p in result.predictions} if config.scores else {}
            for event, values in result.scores:
                scores.append({"event_id": event.event_id, "user_id": event.user_id, "ts": event.ts,
                               "next_item_rank": ranks.get(event.event_id), **values})
            for p in result.predictions:
                if not selector(p.event) or not p.in_session:
                    continue
                predict_seconds += p.seconds
                ranked = p.items
                rank = metrics.update(p.event.item_id, ranked)
                bucket = buckets.setdefault(
                    int((p.event.ts - span_start) // width), Bucket(span_start)
                )
                bucket.points += 1
                if rank is not None and rank <= 20:
                    bucket.hits20 += 1
                    bucket.rr20 += 1.0 / rank
                bucket.items.update(ranked)
                recommended.update(ranked)
                lists += 1
                from_fallback = p.scores.count(0.0)
                items_total += len(p.items)
                fallback_items += from_fallback
                fallback_lists += from_fallback == len(p.items)
            first = next((r.event for r in batch if r.event is not None), None)
            if first is not None:
                bucket = buckets.setdefault(int((first.ts - span_start) // width), Bucket(span_start))
                bucket.events += len(batch)
                bucket.seconds += seconds
            if progress is not None:
                progress.update(len(batch))
    finally:
        if progress is not None:
            progress.close()
    elapsed = time.perf_counter() - started
    learner.record()
    final = await _users(state, learner, span_end, processor)
    quality = _segment_quality(final, learner, config.truth)
    users = users_as_of if users_as_of is not None else final
    for row in users:
        del row["features"]
    settings = config.settings
    campaign_rows = campaigns.report(await state.campaign_counts(), span_end,
                                     settings.offer_window_days, processor.campaign_costs)
    await state.close()
    if counts["already_applied"]:
        counts["note"] = (
            "events already applied to this Redis state were skipped: "
            "use a fresh SHOPSTREAM_PREFIX for a new replay"
        )
    metrics_doc = {
        "next_item": metrics.get(),
        "mode": "frozen" if config.freeze_at_eval else "learning",
        "events": counts,
        "coverage": {
            "items_recommended": len(recommended),
            "catalogue": len(catalogue),
            "share": round(len(recommended) / max(len(catalogue), 1), 4),
        },
        "fallback": {
            "lists_share": round(fallback_lists / max(lists, 1), 4),
            "items_share": round(fallback_items / max(items_total, 1), 4),
        },
        "propensity": learner.metrics.get(),
        "segments": learner.segments.profiles(),
        "segment_quality": quality,
        "alerts": alert_counts(alerts),
        "actions": action_counts(actions),
        # Treated against held out per kind, campaign and segment (stream/campaigns.py).
        "campaigns": campaign_rows,
        "fraud": fraud_metrics(purchases, labels, alerts, learner),
        "churn": churn_metrics(users, config.truth, config.settings.churn_threshold),
        "throughput": {
            "seconds": round(elapsed, 3),
            "events_per_s": round(len(records) / max(elapsed, 1e-9), 1),
            # Time spent ranking, over the points scored: session-rec's predict loop.
            "predictions_per_s": round(metrics.points / predict_seconds, 1) if predict_seconds else None,
            # "python" when models/cooccurrence_rank.pyx was not built (no C compiler at install).
            "ranking": "compiled" if COMPILED else "python",
        },
    }
    if users_as_of is not None and config.as_of is not None:
        # Events carry the ids the state knows (pseudonymised, with a user key) by now.
        buyers = {r.event.user_id for r in records
                  if r.event is not None and r.event.type == "purchase" and r.event.ts >= config.as_of}
        metrics_doc["repeat_ranking"] = repeat_ranking(users, buyers, config.as_of, span_end)
    demand = _demand(records, config)
    if demand is not None:
        metrics_doc["demand"] = demand
    if config.redis_url is not None and config.settings.demand:
        from backtest.demand_eval import redis_memory

        metrics_doc["demand_redis"] = redis_memory(config.redis_url, config.settings.prefix)
    alert_docs = [a.to_dict() for a in alerts]
    return ReplayResult(metrics_doc, users, _timeline(buckets, width, span_start), dead, scores,
                        learner.timeline, alert_docs, [a.to_dict() for a in actions],
                        alert_timeline(alert_docs, purchases, labels))


def _demand(records: Sequence[Record], config: ReplayConfig) -> dict | None:
    """Daily demand forecasts scored on the online-retail protocol (backtest/demand_eval.py),
    for inputs with purchases; None without any."""
    from backtest.demand_eval import book_cost, from_events
    from backtest.sources import ORDER_LINE_SKIPS

    purchases = [r.event for r in records if r.event is not None and r.event.type == "purchase"]
    if not purchases:
        return None
    out = from_events(purchases, config.settings.timezone, config.progress)
    if config.settings.demand:
        events = [r.event for r in records if r.event is not None]
        out["stream_cost"] = book_cost(events, len(records), config.settings.timezone, config.batch_size)
    skipped = {str(p): ORDER_LINE_SKIPS[str(p)] for p in config.inputs if str(p) in ORDER_LINE_SKIPS}
    if skipped:
        out["lines_not_sales"] = skipped
    return out


def action_counts(actions: list[Action]) -> dict:
    """Decisions per campaign: treated, held out, and the held-out share."""
    out: dict[str, dict] = {}
    for a in actions:
        c = out.setdefault(a.campaign, {"kind": a.kind, "treated": 0, "held_out": 0})
        c["held_out" if a.held_out else "treated"] += 1
    for c in out.values():
        c["held_out_share"] = round(c["held_out"] / max(c["treated"] + c["held_out"], 1), 4)
    return dict(sorted(out.items()))


def _segment_quality(users: list[dict], learner: Learner, truth: Path | None) -> dict:
    """Online K-means against scikit-learn's offline KMeans on the final user
    features (same k, same scaling), and against planted types when known."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    segments = learner.segments
    if not segments.ready or len(users) < segments.k:
        return {}
    xs = [u["features"] for u in users]
    scale = segments.scale
    points = [[v * s for v, s in zip(segments.transform(x), scale)] for x in xs]
    offline = KMeans(segments.k, n_init=10, random_state=0).fit(points).inertia_
    online = segments.inertia(xs)
    out = {"users": len(xs), "inertia_online": round(online, 3), "inertia_offline": round(offline, 3),
           "inertia_ratio": round(online / offline, 4) if offline else None}
    if truth is not None:
        planted = {}
        for line in truth.read_bytes().splitlines():
            row = orjson.loads(line)
            planted[row["user_id"]] = row["type"]
        pairs = [(planted[u["user_id"]], u["segment"]) for u in users
                 if u["user_id"] in planted and u["segment"] is not None]
        if pairs:
            out["ari"] = round(adjusted_rand_score([t for t, _ in pairs], [s for _, s in pairs]), 4)
            out["ari_users"] = len(pairs)
    return out


def _rank(p: Prediction) -> int | None:
    return p.items.index(p.event.item_id) + 1 if p.in_session and p.event.item_id in p.items else None


def _timeline(buckets: dict[int, Bucket], width: float, start: float) -> list[dict]:
    out = []
    seen: set[str] = set()
    for index in sorted(buckets):
        b = buckets[index]
        seen |= b.items
        out.append({
            "ts": start + index * width,
            "points": b.points,
            "HR@20": b.hits20 / b.points if b.points else math.nan,
            "MRR@20": b.rr20 / b.points if b.points else math.nan,
            "items_recommended": len(seen),
            "events_per_s": b.events / b.seconds if b.seconds else math.nan,
        })
    return out


def _progress(total: int, enabled: bool):  # type: ignore[no-untyped-def]
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="ev", unit_scale=True, desc="replay", mininterval=0.5)


def replay(config: ReplayConfig) -> ReplayResult:
    return asyncio.run(run(config))
