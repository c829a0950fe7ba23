"""The voice backtest: reviews and messages read, scored before learnt, the bars on the real sets."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from backtest.sources import SourceError
from backtest.voice_eval import evaluate, pretrained_sentiment, replay_texts
from backtest.voice_sources import read_messages, read_reviews
from tests.support import DATA, ROOT

REVIEWS_ZH = DATA.parent / "reviews-zh" / "online_shopping_10_cats.csv.gz"
INTENTS = DATA.parent / "support-intents" / "bitext_customer_support.csv.gz"


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _reviews(n: int) -> list[dict]:
    good, bad = "质量很好，物流很快，很满意", "质量太差，物流太慢，退货"
    return [{"review_id": f"r{i}", "user_id": f"u{i % 7}", "item_id": f"i{i % 3}", "ts": 1704067200 + i,
             "text": good if i % 2 else bad, "rating": 5 if i % 2 else 1} for i in range(n)]


def _messages(n: int) -> list[dict]:
    texts = {"track_order": "where is my order", "get_refund": "I want a refund for my purchase"}
    return [{"message_id": f"m{i}", "user_id": f"u{i % 5}", "ts": 1704067200 + i, "channel": "chat",
             "text": texts[intent], "intent": intent}
            for i, intent in enumerate(["track_order", "get_refund"] * (n // 2))]


def test_jsonl_reviews_and_messages_are_read_in_time_order(tmp_path: Path) -> None:
    rows = _reviews(4)[::-1]
    reviews = read_reviews(_jsonl(tmp_path / "r.jsonl", rows))
    assert [r.review_id for r in reviews] == ["r0", "r1", "r2", "r3"]
    assert read_messages(_jsonl(tmp_path / "m.jsonl", _messages(2)))[1].intent == "get_refund"


def test_a_broken_line_names_its_file_and_line(tmp_path: Path) -> None:
    rows = _reviews(3)
    rows[1]["rating"] = 9
    with pytest.raises(SourceError, match=r"r.jsonl:2: field 'rating' must be a number from 1 to 5"):
        read_reviews(_jsonl(tmp_path / "r.jsonl", rows))


def test_the_labelled_sets_draw_users_items_and_times_with_the_seed(tmp_path: Path) -> None:
    csv = "cat,label,review\n水果,0,\n" + "".join(f"书籍,{i % 2},第{i}本书\n" for i in range(40))
    path = tmp_path / "zh.csv.gz"
    path.write_bytes(gzip.compress(csv.encode()))
    first, again, other = read_reviews(path, 1), read_reviews(path, 1), read_reviews(path, 2)
    assert first == again and len(first) == 40  # the empty review is skipped
    assert {r.rating for r in first} == {1.0, 5.0} and len({r.user_id for r in first}) > 1
    assert [r.text for r in first] != [r.text for r in other]
    assert [r.ts for r in first] == sorted(r.ts for r in first)


def test_every_text_is_scored_before_it_is_learnt() -> None:
    from stream.text_events import review_from_dict

    first, second = (review_from_dict(r) for r in _reviews(2))
    again = review_from_dict({**first.to_dict(), "review_id": "again", "ts": first.ts + 10})
    scored, _, _ = replay_texts([first, second, again], [], batch_size=3)
    assert [t.review_id for t, _ in scored] == ["r0", "r1", "again"]
    assert scored[0][1].raw_positive == 0.5  # nothing learnt before it, its own rating included
    assert scored[2][1].raw_positive < 0.5  # its twin, rated 1, was learnt before it
    assert scored[0][1].positive is None  # and the model says it has not seen enough


def test_snownlp_scores_the_same_chinese_reviews_and_says_when_it_cannot() -> None:
    from stream.text_events import review_from_dict

    zh = [review_from_dict(r) for r in _reviews(10)]
    scored, _, _ = replay_texts(zh, [], batch_size=5)
    peer = pretrained_sentiment(scored, warmup=4)
    assert peer["texts"] == 6 and peer["roc_auc"] == 1.0 and peer["accuracy"] == 1.0
    assert peer["ours_roc_auc"] is not None
    assert pretrained_sentiment(scored, warmup=4, sample=3)["texts"] == 3
    assert pretrained_sentiment(scored)["skipped"] == "no rated review after the first 5,000"
    en = [review_from_dict({**r.to_dict(), "text": "arrived late, poor quality"}) for r in zh]
    scored, _, _ = replay_texts(en, [], batch_size=5)
    assert pretrained_sentiment(scored, warmup=4)["skipped"] == "most reviews are not Chinese"


@pytest.mark.slow
@pytest.mark.skipif(not (REVIEWS_ZH.exists() and INTENTS.exists()),
                    reason="needs ../shared/data/reviews-zh and support-intents")
def test_bars_on_the_real_sets() -> None:
    run = evaluate(read_reviews(REVIEWS_ZH, 1), read_messages(INTENTS, 1), reference=False)
    assert run.metrics["sentiment"]["roc_auc"] >= 0.96
    assert run.metrics["intent"]["accuracy"] >= 0.985


def test_replay_cli_writes_sentiment_and_intent(tmp_path: Path) -> None:
    reviews = _jsonl(tmp_path / "r.jsonl", _reviews(60))
    messages = _jsonl(tmp_path / "m.jsonl", _messages(60))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "replay.py"), "--quiet", "--reviews", str(reviews),
         "--messages", str(messages), "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr
    metrics = orjson.loads((out / "metrics.json").read_bytes())
    assert metrics["sentiment"]["rated"] == 60 and metrics["intent"]["labelled"] == 60
    assert metrics["sentiment"]["offline_reference"]["roc_auc"] == 1.0
    assert "sentiment:" in done.stdout and "Sentiment over the stream" in (out / "report.html").read_text()


def test_replay_cli_bad_text_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"review_id": "r1"}\n')
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "replay.py"), "--quiet", "--reviews", str(bad)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"replay: {bad}:1: missing field 'ts'"]


def test_beside_a_replay_of_events_the_voice_joins_its_files(tmp_path: Path) -> None:
    clicks = tmp_path / "clicks.tsv"
    clicks.write_text("SessionId\tItemId\tTime\n1\tA\t1396310400\n1\tB\t1396310460\n2\tA\t1396314000\n")
    reviews = _jsonl(tmp_path / "r.jsonl", _reviews(30))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "replay.py"), "--quiet", "--input", str(clicks),
         "--reviews", str(reviews), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    metrics = orjson.loads((out / "metrics.json").read_bytes())
    assert "next_item" in metrics and metrics["sentiment"]["rated"] == 30
    page = (out / "report.html").read_text()
    assert "shopstream backtest" in page and "Customer voice" in page
