#!/usr/bin/env python3
"""Replay recorded events through shopstream's Processor (backtest), or push
them into the input topics (--to-kafka).

Example (the published train/test split of the yoochoose sample)::

    python scripts/replay.py \\
        --input ../shared/data/yoochoose-100k/train_full.tsv \\
        --input ../shared/data/yoochoose-100k/test.tsv \\
        --eval-from ../shared/data/yoochoose-100k/test.tsv --out out/test

Reviews and customer-service messages (sentiment and intent, prequential,
with the offline reference, and snownlp's pretrained sentiment on Chinese
reviews)::

    python scripts/replay.py \\
        --reviews ../shared/data/reviews-zh/online_shopping_10_cats.csv.gz \\
        --messages ../shared/data/support-intents/bitext_customer_support.csv.gz --out out/voice
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.cli import Parser  # noqa: E402
from stream.config import ConfigError, Settings  # noqa: E402
from stream.events import HISTORY_MIN_TS, InvalidEvent, parse_ts  # noqa: E402


def parse_time_or_file(value: str) -> float | Path:
    path = Path(value)
    if path.exists():
        return path
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parse_ts(value, HISTORY_MIN_TS)
    except InvalidEvent:
        raise argparse.ArgumentTypeError(
            f"{value!r} is neither a file nor a time (epoch seconds or ISO-8601)"
        ) from None


def parse_time(value: str) -> float:
    result = parse_time_or_file(value)
    if isinstance(result, Path):
        raise argparse.ArgumentTypeError(f"{value!r} is a file, not a time")
    return result


def _campaign(path: Path, seed: int, outcome: str):  # type: ignore[no-untyped-def]
    """Prequential uplift on a campaign log; prints its table."""
    from backtest import campaign_log
    from backtest.uplift_eval import evaluate

    run = evaluate(campaign_log.read(path), outcome=outcome, seed=seed)
    m = run.metrics
    o = m["overall"]
    print(f"campaign {', '.join(m['campaigns'])}: {m['customers']:,} customers "
          f"({o['treated']:,} treated, {o['held_out']:,} held out), outcome {outcome!r}, "
          f"order {m['order']} (seed {seed}); overall uplift {o['points']:.2f} points")
    for name, s in m["scorers"].items():
        top, late = s["top_30_uplift"], s["top_30_uplift_second_half"]
        print(f"  {name:15s} top 30 %: {top['points']:5.2f} points "
              f"(95 % {top['low']:.2f} to {top['high']:.2f}); second half {late['points']:5.2f}; "
              f"Qini area {s['qini_area']:.3f}")
    for name, s in m["offline"].items():
        top = s["top_30_uplift"]
        print(f"  offline, not prequential: {name} top 30 %: {top['points']:5.2f} points "
              f"(95 % {top['low']:.2f} to {top['high']:.2f}); Qini area {s['qini_area']:.3f}")
    return run


def _print_demand(d: dict, events_per_s: float) -> None:
    if "skipped" in d:
        print(f"demand: not scored ({d['skipped']})")
    else:
        pr = d["protocol"]
        print(f"demand ({pr['series']:,} products, origins {pr['origins'][0]}..{pr['origins'][1]}, "
              f"h=1..{pr['horizon']}; {d['seconds']:.1f} s):")
        print(f"  {'forecaster':16s} {'RMSSE':>7s} {'MASE':>7s} {'WAPE':>7s} {'bias':>7s} {'h1 RMSSE':>9s} {'cover 80':>9s}")
        for name, f in d["forecasters"].items():
            cover = f"{f['coverage_80']:.1%}" if "coverage_80" in f else "-"
            print(f"  {name:16s} {f['rmsse']:7.4f} {f['mase']:7.4f} {f['wape']:7.4f} {f['bias']:+7.4f} "
                  f"{f['per_horizon']['h1']['rmsse']:9.4f} {cover:>9s}")
    cost = d.get("stream_cost")
    if cost:
        # The replay's own cost per event, of the same run, says how fast the machine was.
        replay_us = 1e6 / events_per_s if events_per_s > 0 else float("nan")
        print(f"  demand on the stream: {cost['us_per_event']:.2f} µs per replayed event "
              f"({cost['us_per_event'] / replay_us:.1%} of the replay's {replay_us:.1f} µs; "
              f"{cost['series']:,} series, {cost['surge_alerts']:,} surge alerts)")


def _voice(reviews: list[Path], messages: list[Path], seed: int, progress: bool,  # type: ignore[no-untyped-def]
           settings: Settings):
    """Prequential sentiment and intent with the offline reference; prints its table."""
    from backtest.voice_eval import evaluate
    from backtest.voice_sources import read_messages, read_reviews

    texts = [r for f in reviews for r in read_reviews(f, seed)]
    asked = [m for f in messages for m in read_messages(f, seed)]
    texts.sort(key=lambda r: r.ts)
    asked.sort(key=lambda m: m.ts)
    if progress:
        print(f"voice: {len(texts):,} reviews, {len(asked):,} messages (seed {seed}); "
              "the offline reference fits 5 folds after each stream", file=sys.stderr)
    run = evaluate(texts, asked, seed=seed, progress=progress, settings=settings)
    print(voice_table(run.metrics))
    return run


def _f(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-"


def voice_table(m: dict) -> str:
    """The sentiment and intent figures beside the offline reference, one line each."""
    lines = []
    s = m.get("sentiment")
    if s:
        ref = s.get("offline_reference", {})
        lines.append(f"sentiment: {s['rated']:,} rated reviews; prequential after the first "
                     f"{s['after']:,}: ROC AUC {_f(s['roc_auc'])}, accuracy {_f(s['accuracy'])}"
                     f" | offline reference ({ref.get('model', 'none')}): ROC AUC "
                     f"{_f(ref.get('roc_auc'))}, accuracy {_f(ref.get('accuracy'))}")
        peer = s.get("pretrained_peer", {})
        if peer:
            lines.append(f"  peer on the same reviews, {peer['model']}: " + (
                f"skipped, {peer['skipped']}" if "skipped" in peer else
                f"ROC AUC {_f(peer.get('roc_auc'))}, accuracy {_f(peer.get('accuracy'))} on "
                f"{peer['texts']:,} of them; ours on those: ROC AUC {_f(peer.get('ours_roc_auc'))}, "
                f"accuracy {_f(peer.get('ours_accuracy'))}"))
    i = m.get("intent")
    if i:
        ref = i.get("offline_reference", {})
        lines.append(f"intent: {i['labelled']:,} labelled messages, {i['intents']} intents; prequential "
                     f"after the first {i['after']:,}: accuracy {_f(i['accuracy'])}, macro-F1 "
                     f"{_f(i['macro_f1'])}, unknown (below {i['threshold']} or unfamiliar): {_f(i['unknown_share'])}"
                     f" | offline reference ({ref.get('model', 'none')}): accuracy "
                     f"{_f(ref.get('accuracy'))}, macro-F1 {_f(ref.get('macro_f1'))}")
    cost = m.get("text_cost", {})
    if cost.get("us_per_text") is not None:
        lines.append(f"text cost: {cost['us_per_text']:.0f} µs of CPU per text event "
                     f"({cost['wall_us_per_text']:.0f} µs wall, with whatever else the machine runs; "
                     f"{cost['texts']:,} texts through Processor.handle in batches of "
                     f"{cost['batch_size']}, in-memory state)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="replay", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", action="append", type=Path, default=[],
                   help="JSONL events or a SessionId/ItemId/Time TSV; repeat to merge by event time")
    p.add_argument("--campaign", type=Path, metavar="FILE",
                   help="a campaign log (JSONL of decisions, features, outcomes, or the Hillstrom CSV): "
                        "prequential uplift, in metrics.json as 'uplift'")
    p.add_argument("--reviews", action="append", type=Path, default=[], metavar="FILE",
                   help="reviews: JSONL of the contract or the reviews-zh CSV (users, items, times "
                        "drawn with --seed); sentiment in metrics.json")
    p.add_argument("--messages", action="append", type=Path, default=[], metavar="FILE",
                   help="customer-service messages: JSONL of the contract or the Bitext support CSV "
                        "(users, times drawn with --seed); intent in metrics.json")
    p.add_argument("--seed", type=int, default=1,
                   help="with --campaign, --reviews, --messages: draws the order (and users, items, "
                        "times) of files without them (default 1)")
    p.add_argument("--outcome", default="visit",
                   help="with --campaign: the outcome the uplift is of (default visit)")
    p.add_argument("--eval-from", type=parse_time_or_file,
                   help="score only events at/after this time, or the events of this input file")
    p.add_argument("--freeze-at-eval", action="store_true",
                   help="no model learns from evaluated events (their sessions still move on)")
    p.add_argument("--out", type=Path, help="write metrics.json, users.jsonl, report.html here")
    p.add_argument("--scores", action="store_true", help="also write scores.jsonl (one line per event)")
    p.add_argument("--as-of", type=parse_time, help="users.jsonl as of this event time")
    p.add_argument("--truth", type=Path,
                   help="what produce.py planted (--truth): adds segment recovery (ARI) to metrics.json")
    p.add_argument("--labels", type=Path, metavar="FILE.jsonl",
                   help='confirmed fraud outcomes ({"event_id" or "order_id", "fraud", "ts"} per line), '
                        "merged into the stream at their own time")
    p.add_argument("--redis", metavar="URL", help="keep state in this Redis instead of memory")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--to-kafka", action="store_true",
                   help="push the events (and reviews, messages) into the input topics instead of "
                        "processing them")
    p.add_argument("--speed", type=float, default=0.0,
                   help="with --to-kafka: pace by event time, X times real time (0 = flat out)")
    args = p.parse_args(argv)
    if args.batch_size < 1:
        p.error("--batch-size must be >= 1")
    voice = bool(args.reviews or args.messages)
    if not args.input and not args.campaign and not voice:
        p.error("give --input (events), --campaign (a campaign log), --reviews or --messages")
    if args.to_kafka and not (args.input or voice):
        p.error("--to-kafka needs --input, --reviews or --messages")
    if args.speed < 0:
        p.error("--speed must be >= 0")
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        p.exit(2, f"replay: {exc}\n")

    from kafka.errors import KafkaError

    from shop.publish import Failure
    from backtest.replay import ReplayConfig, ReplayError, replay
    from backtest.report import write
    from backtest.sources import SourceError
    from backtest.campaign_log import CampaignLogError

    try:
        if args.to_kafka:
            from shop.publish import push_files, push_texts

            if args.input:
                print(push_files(args.input, settings, speed=args.speed, progress=not args.quiet))
            if voice:
                from backtest.voice_sources import read_messages, read_reviews

                print(push_texts([r for f in args.reviews for r in read_reviews(f, args.seed)],
                                 [m for f in args.messages for m in read_messages(f, args.seed)], settings))
            return 0
        uplift = _campaign(args.campaign, args.seed, args.outcome) if args.campaign else None
        voice_run = _voice(args.reviews, args.messages, args.seed, not args.quiet, settings) if voice else None
        if not args.input and voice_run is not None:
            if args.out:
                from backtest import voice_report

                for path in voice_report.write(voice_run, args.out,
                                               [str(f) for f in args.reviews + args.messages]):
                    print(f"wrote {path}")
            if uplift is None:
                return 0
        if not args.input:
            assert uplift is not None
            if args.out:
                from backtest.report import write_campaign

                for path in write_campaign(uplift, args.out, args.campaign):
                    print(f"wrote {path}")
            return 0
        config = ReplayConfig(
            inputs=args.input,
            eval_from=args.eval_from,
            freeze_at_eval=args.freeze_at_eval,
            redis_url=args.redis,
            scores=args.scores,
            as_of=args.as_of,
            truth=args.truth,
            labels=args.labels,
            batch_size=args.batch_size,
            progress=not args.quiet,
            settings=settings,
        )
        result = replay(config)
    except (ReplayError, SourceError, CampaignLogError, Failure, KafkaError, ConnectionError, OSError) as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("replay: interrupted", file=sys.stderr)
        return 130
    m = result.metrics
    if uplift is not None:
        m["uplift"] = uplift.metrics
    ni = m["next_item"]
    print(
        f"next item ({m['mode']}): "
        + "  ".join(f"{k} {v:.4f}" for k, v in ni.items() if k != "points")
        + f"  points {ni['points']:,}"
    )
    ev, tp = m["events"], m["throughput"]
    print(
        f"events: {ev['read']:,} read, {ev['processed']:,} processed, "
        f"{ev['dead_lettered']:,} dead-lettered; {tp['events_per_s']:,.0f} events/s"
        + (f", {tp['predictions_per_s']:,.0f} predictions/s ({tp['ranking']} ranking)"
           if tp["predictions_per_s"] else "")
        + f"; coverage {m['coverage']['share']:.1%}, fallback lists {m['fallback']['lists_share']:.1%}"
    )
    if m["alerts"]:
        print("alerts: " + ", ".join(f"{k} {v:,}" for k, v in m["alerts"].items()))
    if m["actions"]:
        print("actions: " + ", ".join(f"{k} {v['treated']:,} treated / {v['held_out']:,} held out"
                                      for k, v in m["actions"].items()))
    fraud, churn = m["fraud"], m["churn"]
    baseline = fraud.get("hst_baseline", {})
    for name, part in (("all", fraud.get("all")), ("first 6 hours", fraud.get("first_hours")),
                       ("without labels", fraud.get("without_labels")),
                       ("before labels", fraud.get("before_labels")),
                       ("after labels", fraud.get("after_labels")),
                       ("HalfSpaceTrees baseline, all", baseline.get("all")),
                       ("HalfSpaceTrees baseline, first 6 hours", baseline.get("first_hours"))):
        if part and "roc_auc" in part:
            print(f"fraud {name}: ROC AUC {part['roc_auc']:.4f}, "
                  f"average precision {part['average_precision']:.4f} "
                  f"({part['purchases']:,} purchases, {part['fraud']:,} fraud)")
    if churn.get("precision") is not None:
        print(f"churn: precision {churn['precision']:.4f}, recall {churn['recall']:.4f} "
              f"({churn['flagged']} flagged, {churn['planted_churners']} planted churners)")
    if m.get("demand"):
        _print_demand(m["demand"], tp["events_per_s"])
    if m.get("demand_redis", {}).get("series"):
        r = m["demand_redis"]
        print(f"demand in Redis: {r['bytes_per_series']:,.0f} bytes per series ({r['series']:,} series, "
              + ", ".join(f"{k} {v:,}" for k, v in sorted(r["by_key"].items())) + " bytes)")
    if "note" in ev:
        print(f"note: {ev['note']}")
    if args.out:
        for path in write(result, args.out, config):
            print(f"wrote {path}")
        if voice_run is not None:
            from backtest import voice_report

            voice_report.write(voice_run, args.out, [str(f) for f in args.reviews + args.messages],
                               alone=False)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into head and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
