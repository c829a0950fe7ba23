"""Recorded reviews and customer-service messages for the voice backtest.

Each file is JSONL of the contract (:mod:`stream.text_events`), or one of two
public labelled sets taken as they are (gzipped CSV, told apart by header):

- **reviews-zh** (``cat,label,review``): no user, item, time or rating. The
  rows are shuffled with ``seed``; each review gets a user drawn from
  ``len/4`` users, an item drawn from 50 per category (``books-7`` for 书籍), a time a
  minute after the previous one, ``rating`` 5 for label 1 and 1 for label 0
  (the label is all the set says), ``lang`` ``zh``. The empty review is skipped.
- **support intents** (Bitext: ``instruction``, ``intent``, ...): shuffled with
  ``seed``; a user drawn from ``len/3`` users, ``channel`` chat or email drawn,
  a time two minutes after the previous one, the text is ``instruction`` and
  the agent's label is ``intent``.

A JSONL line that breaks the contract raises :class:`SourceError` with its line.
"""

from __future__ import annotations

import csv
import gzip
import io
import random
from pathlib import Path

import orjson

from backtest.sources import SourceError
from stream.events import HISTORY_MIN_TS, InvalidEvent
from stream.text_events import CustomerMessage, Review, message_from_dict, review_from_dict

START_TS = 1704067200.0  # 2024-01-01 UTC: where drawn times begin
ITEMS_PER_CATEGORY = 50
# The set's product kinds, as item ids name them (ASCII: easy to put in a URL).
CATEGORIES = {"书籍": "books", "平板": "tablets", "手机": "phones", "水果": "fruit", "洗发水": "shampoo",
              "热水器": "water-heaters", "蒙牛": "dairy", "衣服": "clothes", "计算机": "computers",
              "酒店": "hotels"}


def _lines(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8-sig", "replace")
    if not text.strip():
        raise SourceError(f"{path} is empty")
    return text.splitlines()


def _jsonl(path: Path, lines: list[str], parse) -> list:  # type: ignore[no-untyped-def]
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(parse(orjson.loads(line), HISTORY_MIN_TS))
        except orjson.JSONDecodeError:
            raise SourceError(f"{path}:{n}: not valid JSON") from None
        except InvalidEvent as exc:
            raise SourceError(f"{path}:{n}: {exc.reason}") from None
    return out


def read_reviews(path: Path, seed: int = 1) -> list[Review]:
    """Reviews in time order (see the module docstring for the CSV)."""
    lines = _lines(path)
    if not lines[0].startswith("cat,label,review"):
        return sorted(_jsonl(path, lines, review_from_dict), key=lambda r: r.ts)
    rows = [r for r in csv.DictReader(io.StringIO("\n".join(lines))) if (r.get("review") or "").strip()]
    rng = random.Random(seed)
    rng.shuffle(rows)
    users = max(1, len(rows) // 4)
    out = []
    for i, row in enumerate(rows):
        out.append(Review(
            review_id=f"rz{i}", user_id=f"u{rng.randrange(users)}",
            item_id=f"{CATEGORIES.get(row['cat'], 'other')}-{rng.randrange(ITEMS_PER_CATEGORY)}",
            ts=START_TS + 60.0 * i, text=row["review"], rating=5.0 if row["label"] == "1" else 1.0,
            lang="zh",
        ))
    return out


def read_messages(path: Path, seed: int = 1) -> list[CustomerMessage]:
    """Customer-service messages in time order (see the module docstring)."""
    lines = _lines(path)
    header = lines[0].split(",")
    if "instruction" not in header or "intent" not in header:
        return sorted(_jsonl(path, lines, message_from_dict), key=lambda m: m.ts)
    rows = [r for r in csv.DictReader(io.StringIO("\n".join(lines))) if r["instruction"].strip()]
    rng = random.Random(seed)
    rng.shuffle(rows)
    users = max(1, len(rows) // 3)
    return [
        CustomerMessage(
            message_id=f"si{i}", user_id=f"u{rng.randrange(users)}", ts=START_TS + 120.0 * i,
            text=row["instruction"], channel=rng.choice(("chat", "email")), intent=row["intent"],
        )
        for i, row in enumerate(rows)
    ]
