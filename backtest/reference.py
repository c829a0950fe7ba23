"""What two runs over the same events must agree on, and the reference run
they are held against: the offline replay of those events into Redis.

Used by the fault tests and by the benchmark's check that speed settings
change no result. Only what the events alone decide is compared: the scores
a profile keeps depend on which model snapshot a worker had loaded.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson
import redis
from kafka import KafkaConsumer, TopicPartition

from stream.config import Settings

# What a profile keeps for the models: the scores depend on which snapshot of
# the global models a worker had loaded at the time, and ``closed_at`` on how
# far event time had advanced in the partitions a batch swept, not only on
# the user's own events.
MODEL_OUTPUTS = ("segment", "propensity", "closed_at")
# Decisions that depend on the models too: cart nudges (the propensity
# snapshot). The segment a decision was taken in is a model output as well:
# campaign outcomes are compared summed over segments.
MODEL_DECISIONS = ("cart_nudge",)


def _exposures(exposures: list[list]) -> list[list]:
    """A profile's decisions with their outcomes, less what the models decide."""
    from stream.campaigns import KIND, SEGMENT

    return [e[:SEGMENT] + e[SEGMENT + 1:] for e in exposures if e[KIND] not in MODEL_DECISIONS]


def _campaign_outcomes(raw: dict[bytes, bytes]) -> dict[str, int]:
    """The campaign totals over segments, less those of model decisions."""
    from stream.campaigns import SEP

    out: dict[str, int] = {}
    for name, value in raw.items():
        kind, campaign, _segment, *rest = name.decode().split(SEP)
        if kind not in MODEL_DECISIONS:
            key = SEP.join((kind, campaign, *rest))
            out[key] = out.get(key, 0) + int(value)
    return out


def redis_state_snapshot(client: redis.Redis, prefix: str) -> dict:
    """The state that must be identical between runs: profiles (with the
    decisions' outcomes so far), co-occurrence, session neighbours (each
    item's sessions, each session's items), the campaign totals and demand
    (each series' forecaster and open days, the shop's rhythm and totals).
    Keys of a Redis Cluster are named as on one Redis (their hash tag left
    out, item occurrences in one hash), so both compare key for key."""
    from stream.redis_cluster import plain_name

    out: dict = {}
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        name = plain_name(key.decode()[len(prefix):])
        if name == "item-occurrences":
            out.setdefault(name, {}).update(client.hgetall(key))
        elif name.startswith("user:"):
            profile = orjson.loads(client.get(key))
            out[name] = {k: v for k, v in profile.items() if k not in MODEL_OUTPUTS}
            if "exposures" in profile:
                out[name]["exposures"] = _exposures(profile["exposures"])
        elif name.endswith(":next"):
            out[name] = dict(client.zrange(key, 0, -1, withscores=True))
        elif name.endswith(":sessions"):
            out[name] = dict(client.zrange(key, 0, -1, withscores=True))
        elif name.startswith("session:"):
            out[name] = client.get(key)
        elif name == "campaign-outcomes":
            out[name] = _campaign_outcomes(client.hgetall(key))
        elif name.startswith("demand:") or name == "demand-shop":
            out[name] = orjson.loads(client.get(key))
        elif name.startswith("demand-days:") or name == "demand-totals":
            out[name] = client.hgetall(key)
        elif name == "demand-pending":
            out[name] = dict(client.zrange(key, 0, -1, withscores=True))
    return out


def first_difference(live: dict, expected: dict) -> str:
    for key in sorted(live.keys() | expected.keys()):
        a, b = live.get(key), expected.get(key)
        if a != b:
            if isinstance(a, dict) and isinstance(b, dict):
                fields = {f: (a.get(f), b.get(f)) for f in a.keys() | b.keys() if a.get(f) != b.get(f)}
                return f"{key}: {fields}"
            return f"{key}: {a!r} != {b!r}"
    return ""


CHURN_KINDS = ("churn_risk", "no_second_visit")


@dataclass
class Reference:
    """The reference run's state and the churn alerts it raised (for regulars
    and for customers seen once)."""

    state: dict
    churn_alert_ids: set[str]
    # Decisions that the events alone decide (not cart nudges): a live run
    # must publish each of them on the actions topic.
    action_ids: set[str] = field(default_factory=set)

    @property
    def users(self) -> set[str]:
        return {key[len("user:"):] for key in self.state if key.startswith("user:")}


async def reference_run(settings: Settings, events: Path, client: redis.Redis) -> Reference:
    """Replay ``events`` in order, one stream, into Redis under a prefix of its own."""
    from backtest.replay import ReplayConfig, run

    reference = replace(settings, prefix="reference-" + settings.prefix)
    result = await run(ReplayConfig(inputs=[events], redis_url=settings.redis_url,
                                    progress=False, settings=reference))
    ids = {a["alert_id"] for a in result.alerts if a["kind"] in CHURN_KINDS}
    actions = {a["action_id"] for a in result.actions if a["kind"] not in MODEL_DECISIONS}
    return Reference(redis_state_snapshot(client, reference.prefix), ids, actions)


def differences(live: dict, reference: Reference, emitted_alert_ids: set[str],
                recommended_users: set[str]) -> list[str]:
    """What a live run got wrong against the reference (empty: nothing).
    Outputs may repeat after a crash but none may be missing: every churn
    alert of the reference, and recommendations for every user it knows
    (a user's first event always publishes; which later events do depends
    on how events fall into batches, so message ids are not compared)."""
    problems = []
    if len(live) != len(reference.state):
        problems.append(f"{len(live)} keys against the reference's {len(reference.state)}")
    if live != reference.state:
        problems.append("first difference: " + first_difference(live, reference.state))
    missing = reference.churn_alert_ids - emitted_alert_ids
    if missing:
        problems.append(f"{len(missing)} churn alerts missing, e.g. {sorted(missing)[:3]}")
    unserved = reference.users - recommended_users
    if unserved:
        problems.append(f"{len(unserved)} users without recommendations, e.g. {sorted(unserved)[:3]}")
    return problems


def _decoded(value: bytes) -> dict:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return {"undecodable": value}


def read_topic(settings: Settings, topic: str, expect: int | None = None, timeout: float = 30.0) -> list[dict]:
    """All messages of ``topic`` from the beginning, as decoded JSON; stops at
    ``expect`` messages, at the first quiet poll once some came (without
    ``expect``), or after ``timeout`` seconds."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=int(timeout * 1000),
        **settings.kafka_options(),
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
        consumer.seek_to_beginning()
        out: list[dict] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                out.extend(_decoded(r.value) for r in records)
            if expect is not None and len(out) >= expect:
                break
            if expect is None and not batch and out:
                break
        return out
    finally:
        consumer.close()


@dataclass
class Comparison:
    """A live run's final state and outputs against the reference run's."""

    reference: Reference
    live: dict
    problems: list[str]


def compare_with_reference(settings: Settings, events: Path, client: redis.Redis) -> Comparison:
    """Run the reference over ``events``, then hold the live run under
    ``settings`` (its Redis prefix and output topics) against it."""
    reference = asyncio.run(reference_run(settings, events, client))
    live = redis_state_snapshot(client, settings.prefix)
    emitted = {a.get("alert_id") for a in read_topic(settings, settings.topics.alerts, timeout=10)}
    recommended = {r.get("user_id") for r in read_topic(settings, settings.topics.recommendations, timeout=10)}
    return Comparison(reference, live, differences(live, reference, emitted, recommended))
