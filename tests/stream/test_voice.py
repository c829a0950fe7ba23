"""Reviews and service messages: the contract, the Processor's voice path, and a real worker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
import redis

from stream.config import ConfigError, Settings
from stream.outputs import Message
from stream.processor import Processor
from stream.state import MemoryState
from stream.text_events import MAX_TEXT_CHARS

T0 = 1_700_000_000.0
FAQ = [{"intent": "track_order", "question": "Where is my order?", "answer": "Your order page shows where it is."},
       {"intent": "get_refund", "question": "How do I get a refund?", "answer": "Refunds take five days."}]
TRAINING = {"track_order": ["where is my order", "track my order please", "where is my parcel order"],
            "get_refund": ["I want a refund", "how do I get my money back", "refund my purchase please"]}


def purchase(n: int, user: str, price: float, ts: float) -> dict:
    return {"event_id": f"p{n}", "type": "purchase", "user_id": user, "item_id": "i1", "ts": ts,
            "price": price}


def review(rid: str, user: str, item: str, ts: float, text: str, rating: int | None = None) -> dict:
    d = {"review_id": rid, "user_id": user, "item_id": item, "ts": ts, "text": text}
    if rating is not None:
        d["rating"] = rating
    return d


def ask(mid: str, user: str, ts: float, text: str, intent: str | None = None) -> dict:
    d = {"message_id": mid, "user_id": user, "ts": ts, "text": text, "channel": "chat"}
    if intent:
        d["intent"] = intent
    return d


def labelled(start: float) -> list[dict]:
    rows = []
    for rep in range(10):
        for intent, texts in TRAINING.items():
            for k, text in enumerate(texts):
                rows.append(ask(f"train-{intent}-{rep}-{k}", f"asker{k}", start + len(rows), text, intent))
    return rows


def run(processor: Processor, topic_docs: list[tuple[str, dict | bytes]]) -> list:
    offsets: dict[str, int] = {}
    messages = []
    for topic, doc in topic_docs:
        offsets[topic] = offsets.get(topic, -1) + 1
        value = doc if isinstance(doc, bytes) else orjson.dumps(doc)
        messages.append(Message(value, topic, 0, offsets[topic], b"k"))

    async def go() -> list:
        return [await processor.handle([m]) for m in messages]
    return asyncio.run(go())


def write_faq(tmp_path: Path) -> Path:
    path = tmp_path / "faq.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in FAQ))
    return path


# -- through a Processor in memory ------------------------------------------------


def test_a_negative_review_from_a_valuable_customer_is_one_alert(tmp_path: Path) -> None:
    settings = Settings(faq=str(write_faq(tmp_path)))
    processor = Processor(MemoryState(settings), settings)
    bad = review("r1", "rich", "i1", T0 + 60, "质量太差，物流太慢", 1)
    results = run(processor, [
        ("purchases", purchase(1, "rich", 300.0, T0)), ("purchases", purchase(2, "poor", 5.0, T0)),
        ("reviews", bad), ("reviews", bad),  # sent twice: one alert
        ("reviews", review("r2", "poor", "i1", T0 + 70, "太差了", 1)),
        ("reviews", review("r3", "rich", "i1", T0 + 80, "Great battery, love it", 5)),
    ])
    alerts = [a.to_dict() for r in results for a in r.alerts if a.kind == "unhappy_customer"]
    assert [(a["user_id"], a["event_id"]) for a in alerts] == [("rich", "r1")]
    reasons = {r["name"]: r["value"] for r in alerts[0]["reasons"]}
    assert reasons["rating"] == 1.0 and reasons["revenue"] == 300.0 and "churn_risk" in reasons
    assert sum(r.duplicates for r in results) == 1


def test_bad_and_oversize_texts_go_to_the_dead_letters_with_a_reason() -> None:
    processor = Processor(MemoryState(), Settings())
    results = run(processor, [
        ("reviews", review("r1", "u", "i", T0, "好", 9)),
        ("messages", {"message_id": "m1", "user_id": "u", "ts": T0, "text": "hi"}),
        ("reviews", review("r2", "u", "i", T0, "长" * (MAX_TEXT_CHARS + 1))),
        ("messages", b"x" * 70000),
    ])
    reasons = [d.reason for r in results for d in r.dead_letters]
    assert reasons == ["field 'rating' must be a number from 1 to 5", "missing field 'channel'",
                       f"field 'text' is longer than {MAX_TEXT_CHARS} characters",
                       "message of 70000 bytes exceeds the 65536-byte limit"]


def test_labelled_messages_teach_intents_and_the_faq_answers(tmp_path: Path) -> None:
    settings = Settings(faq=str(write_faq(tmp_path)))
    processor = Processor(MemoryState(settings), settings)
    results = run(processor, [("messages", m) for m in labelled(T0)] + [
        ("messages", ask("q1", "new", T0 + 1000, "where is my order now?")),
        ("messages", ask("q2", "new", T0 + 1001, "asdf qwerty")),
    ])
    records = {s.message_id: s.to_dict() for r in results for s in r.service}
    assert len(records) == len(labelled(T0)) + 2  # one record per message
    assert records["q1"]["intent"] == "track_order" and records["q1"]["confidence"] >= 0.5
    assert records["q1"]["suggestion"]["answer"] == FAQ[0]["answer"]
    assert records["q2"]["intent"] == "unknown"
    assert records["q2"]["suggestion"]["answer"] == "route to a person"
    assert records["q1"]["customer"] == {"known": False} and records["q1"]["priority"] == "low"


def test_an_item_whose_reviews_turn_bad_raises_one_drop_with_terms_and_snippets() -> None:
    processor = Processor(MemoryState(), Settings())
    good = [("reviews", review(f"g{i}", f"u{i}", "i9", T0 + i, "质量很好，很满意", 5)) for i in range(40)]
    bad = [("reviews", review(f"b{i}", f"v{i}", "i9", T0 + 100 + i, "尺码太小，物流太慢", 1)) for i in range(20)]
    results = run(processor, good + bad)
    drops = [a.to_dict() for r in results for a in r.alerts if a.kind == "item_satisfaction_drop"]
    assert len(drops) == 1
    reasons = {r["name"]: r for r in drops[0]["reasons"]}
    assert reasons["item_id"]["value"] == "i9" and reasons["drop"]["value"] >= 0.25
    assert reasons["snippet_1"]["value"] == "尺码太小，物流太慢"


def test_erasure_and_the_retention_remove_text(tmp_path: Path) -> None:
    settings = Settings(text_ttl_days=1.0)
    state = MemoryState(settings)
    processor = Processor(state, settings)
    run(processor, [("reviews", review("r1", "u1", "i1", T0, "太差了", 1)),
                    ("reviews", review("r2", "u1", "i1", T0 + 3 * 86400, "还是太差", 2))])
    assert [t[2] for t in state.voice.texts["u1"]] == ["r2"]  # r1 is past the retention
    erased, _ = asyncio.run(processor.forget("u1"))
    assert erased["texts"] == 1 and erased["snippets"] == 1
    assert "u1" not in state.voice.texts and not state.voice.items["i1"]["snippets"]


def test_a_bad_faq_file_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "faq.jsonl"
    path.write_text('{"intent": "x", "question": "q"}\n')
    monkeypatch.setenv("SHOPSTREAM_FAQ", str(path))
    with pytest.raises(ConfigError, match=r"SHOPSTREAM_FAQ: .*faq.jsonl:1: needs non-empty strings"):
        Settings.from_env()


# -- through a real worker, broker and Redis --------------------------------------


@pytest.mark.services
def test_two_workers_reviewing_one_item_both_count(services) -> None:
    """An item's reviews come from every worker's partitions: a worker whose
    batch read the item before another's commit runs its batch again."""
    from stream.redis_state import RedisState
    from tests.support import isolated_settings

    settings = isolated_settings(services)
    topic = settings.topics.reviews
    mine = Message(orjson.dumps(review("r1", "u1", "i1", T0, "很好，很满意", 5)), topic, 0, 0, b"u1")
    theirs = Message(orjson.dumps(review("r2", "u2", "i1", T0 + 1, "太差了，退货", 1)), topic, 1, 0, b"u2")

    async def go() -> tuple[bool, dict | None]:
        a, b = RedisState(settings), RedisState(settings)
        worker_a, worker_b = Processor(a, settings), Processor(b, settings)
        decoded, dead = worker_a.decode([mine])
        early = await worker_a.process(decoded, dead)  # reads item i1 as it is now
        await worker_b.handle([theirs])                 # the other worker's review of i1 lands
        assert early.view is not None
        committed = await a.commit(early.view)
        await worker_a.handle([mine])
        doc = await a.item_voice("i1")
        await a.close()
        await b.close()
        return committed, doc

    committed, doc = asyncio.run(go())
    assert not committed  # nothing written from a stale read of the item
    assert doc is not None and doc["n"] == 2 and sorted(r[1] for r in doc["recent"]) == [0, 1]


@pytest.mark.services
@pytest.mark.slow
def test_both_languages_through_a_worker(services, redis_client: redis.Redis, tmp_path: Path) -> None:
    from kafka import KafkaProducer

    from stream.topics import create_topics
    from tests.support import ROOT, Worker, isolated_settings, read_topic, settings_env

    settings = isolated_settings(services, partitions=2, enable_forget=True, faq=str(write_faq(tmp_path)))
    create_topics(settings)
    t = settings.topics
    worker = Worker(settings, tmp_path / "worker").start()
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)

    def send(topic: str, docs: list[dict]) -> None:
        for d in docs:
            producer.send(topic, key=d["user_id"].encode(), value=orjson.dumps(d))
        producer.flush()

    try:
        worker.wait_ready()
        send(t.purchases, [purchase(1, "zh-rich", 300.0, T0), purchase(2, "en-rich", 250.0, T0),
                           purchase(3, "poor", 3.0, T0)])
        worker.wait_received(3)
        reviews = [review("r-zh", "zh-rich", "i1", T0 + 60, "质量太差，物流太慢，退货", 1),
                   review("r-en", "en-rich", "i1", T0 + 61, "The battery died after two days", 1),
                   review("r-poor", "poor", "i1", T0 + 62, "太差了", 1)]
        send(t.reviews, reviews + [reviews[0]])  # the Chinese one twice
        training = labelled(T0 + 100)
        # The labelled messages go in as a recorded file would: replay.py --to-kafka.
        path = tmp_path / "training.jsonl"
        path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in training))
        pushed = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "replay.py"), "--to-kafka", "--messages", str(path)],
            env={**os.environ, **settings_env(settings)}, capture_output=True, text=True, timeout=120)
        assert pushed.returncode == 0 and f"pushed 0 reviews and {len(training)} messages" in pushed.stdout, \
            pushed.stderr
        worker.wait_received(3 + 4 + len(training))
        questions = [ask("q-en", "en-rich", T0 + 900, "where is my order now?"),
                     ask("q-unknown", "poor", T0 + 901, "asdf qwerty")]
        send(t.messages, questions)
        metrics = worker.wait_received(3 + 4 + len(training) + 2)
        assert metrics["dead_lettered"] == 0, metrics

        alerts = [a for a in read_topic(settings, t.alerts, timeout=10) if a["kind"] == "unhappy_customer"]
        assert sorted((a["user_id"], a["event_id"]) for a in alerts) == [("en-rich", "r-en"), ("zh-rich", "r-zh")]
        service = {s["message_id"]: s for s in read_topic(settings, t.service, expect=len(training) + 2)}
        assert service["q-en"]["intent"] == "track_order"
        assert service["q-en"]["suggestion"]["answer"] == FAQ[0]["answer"]
        assert service["q-en"]["customer"]["revenue"] == 250.0
        assert service["q-unknown"]["suggestion"]["answer"] == "route to a person"

        status, item = worker.get("/items/i1/satisfaction")
        assert status == 200 and item["reviews"] == 3 and item["mean_rating"] == 1.0
        assert len(item["negative_snippets"]) == 2
        status, user = worker.get("/users/zh-rich")
        # Latest sentiment: none yet (fewer than 100 rated reviews of each kind seen), as of its review.
        assert status == 200 and user["sentiment"] is None and user["sentiment_ts"] == T0 + 60

        prefix = settings.prefix
        assert redis_client.exists(f"{prefix}text:zh-rich")
        before = orjson.loads(redis_client.get(f"{prefix}voice:item:i1"))["snippets"]
        # The item keeps its two latest negative snippets: which two depends on
        # how the users' partitions interleaved.
        theirs = sum(s[1] == "zh-rich" for s in before)
        status, body = worker.get("/forget/zh-rich", timeout=15.0, method="POST")
        assert status == 200 and body["erased"]["texts"] == 1 and body["erased"]["snippets"] == theirs, body
        assert not redis_client.exists(f"{prefix}text:zh-rich", f"{prefix}voice:user:zh-rich")
        snippets = orjson.loads(redis_client.get(f"{prefix}voice:item:i1"))["snippets"]
        assert all(s[1] != "zh-rich" for s in snippets) and len(snippets) == len(before) - theirs
    finally:
        producer.close()
        worker.stop()


def test_tail_prints_a_service_record_on_one_line(tmp_path: Path) -> None:
    from scripts.tail import format_value

    settings = Settings(faq=str(write_faq(tmp_path)))
    processor = Processor(MemoryState(settings), settings)
    results = run(processor, [("purchases", purchase(1, "rich", 250.0, T0))]
                  + [("messages", m) for m in labelled(T0 + 10)]
                  + [("messages", ask("q1", "rich", T0 + 900, "where is my order now?"))])
    line = format_value(results[-1].service[0].to_json())
    assert "\n" not in line and "SERVICE HIGH" in line and "intent track_order" in line
    assert "sentiment not enough seen yet" in line and line.endswith(f"-> {FAQ[0]['answer']}")


@pytest.mark.services
@pytest.mark.slow
def test_a_restarted_worker_keeps_what_its_text_models_learnt(services, redis_client: redis.Redis,
                                                              tmp_path: Path) -> None:
    import time

    from kafka import KafkaProducer

    from stream import text_store
    from stream.topics import create_topics
    from tests.support import Worker, isolated_settings, read_topic

    settings = isolated_settings(services, partitions=1, text_models_save_s=1.0)
    create_topics(settings)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    training = labelled(T0)
    try:
        first = Worker(settings, tmp_path / "first").start()
        try:
            first.wait_ready()
            for m in training:
                producer.send(settings.topics.messages, key=b"k", value=orjson.dumps(m))
            producer.flush()
            first.wait_received(len(training))
            deadline = time.monotonic() + 30
            saved = None
            while time.monotonic() < deadline:
                saved = text_store.loads(redis_client.get(f"{settings.prefix}{text_store.KEY}"))
                if saved is not None and saved.learnt == len(training):
                    break
                time.sleep(0.3)
            assert saved is not None and saved.learnt == len(training), first.log_tail()
        finally:
            first.stop()
        second = Worker(settings, tmp_path / "second").start()
        try:
            second.wait_ready()
            producer.send(settings.topics.messages, key=b"k",
                          value=orjson.dumps(ask("q1", "new", T0 + 900, "where is my order now?")))
            producer.flush()
            records = read_topic(settings, settings.topics.service, expect=len(training) + 1)
            assert records[-1]["message_id"] == "q1" and records[-1]["intent"] == "track_order"
            assert second.metrics()["voice"]["intents"] == 2
        finally:
            second.stop()
    finally:
        producer.close()


@pytest.mark.services
def test_reviews_and_messages_on_a_redis_cluster(redis_cluster, tmp_path: Path) -> None:
    """The voice documents are tagged like their user's or item's keys and go
    into the cluster's commit; erasure finds them there."""
    import uuid

    from redis.cluster import RedisCluster

    from stream.redis_cluster import ClusterState

    settings = replace(Settings(), redis_url=redis_cluster.url, redis_cluster=True, demand=False,
                       prefix=f"v-{uuid.uuid4().hex[:8]}:", faq=str(write_faq(tmp_path)))
    docs: list[tuple[str, dict]] = [("purchases", purchase(1, "rich", 300.0, T0)),
                                    ("reviews", review("r1", "rich", "i1", T0 + 60, "质量太差，物流太慢", 1)),
                                    ("reviews", review("r2", "other", "i2", T0 + 61, "Great battery", 5))]
    docs += [("messages", m) for m in labelled(T0 + 100)]
    docs += [("messages", ask("q1", "rich", T0 + 900, "where is my order now?"))]

    async def go() -> tuple:
        state = ClusterState(settings)
        processor = Processor(state, settings)
        try:
            offsets: dict[str, int] = {}
            results = []
            for start in range(0, len(docs), 10):
                batch = []
                for topic, doc in docs[start:start + 10]:
                    offsets[topic] = offsets.get(topic, -1) + 1
                    batch.append(Message(orjson.dumps(doc), topic, 0, offsets[topic], b"k"))
                results.append(await processor.handle(batch))
            item = await state.item_voice("i1")
            user = await state.user_voice("rich")
            erased, _ = await processor.forget("rich")
            return results, item, user, erased, await state.user_voice("rich"), await state.item_voice("i1")
        finally:
            await state.close()

    results, item, user, erased, user_after, item_after = asyncio.run(go())
    alerts = [a.alert_id for r in results for a in r.alerts if a.kind == "unhappy_customer"]
    service = {s.message_id: s for r in results for s in r.service}
    assert alerts == ["unhappy_customer:r1"] and service["q1"].intent == "track_order"
    assert item["n"] == 1 and item["snippets"][0][1] == "rich" and user["items"] == ["i1"]
    assert erased["texts"] == 2 and erased["snippets"] == 1 and erased["voice"] == 1
    assert user_after is None and item_after["snippets"] == [] and item_after["n"] == 1
    client = RedisCluster.from_url(redis_cluster.url)
    try:
        keys = {k.decode() for k in client.scan_iter(match=f"{settings.prefix}*voice*", count=1000)}
    finally:
        client.close()
    assert keys and all("}:voice:" in k for k in keys)  # tagged like the user's or item's keys
