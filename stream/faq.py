"""The shop's FAQ (``SHOPSTREAM_FAQ``): the suggested answer to a service message.

JSONL, one entry a line: ``{"intent": "track_order", "question": "Where is
my order?", "answer": "Your order's page shows ..."}``. A message is matched
with the entries of its intent (when the intent is known) by the share of
the question's hashed features the message also has; below ``min_match``,
or with no entry for the intent, the suggestion is to route it to a person.

>>> faq = Faq([FaqEntry("track_order", "Where is my order?", "See your order page."),
...            FaqEntry("get_refund", "How do I get a refund?", "Refunds take 5 days.")])
>>> faq.suggest("where is my order #123?", "track_order").answer
'See your order page.'
>>> faq.suggest("my order never came, where is it", "unknown").answer
'route to a person'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import orjson

from models.text import UNKNOWN, TextFeatures

ROUTE = "route to a person"


class FaqError(ValueError):
    """An FAQ file that cannot be used (one-line message)."""


@dataclass(frozen=True, slots=True)
class FaqEntry:
    intent: str
    question: str
    answer: str


@dataclass(frozen=True, slots=True)
class Suggestion:
    answer: str
    question: str | None = None  # the FAQ question matched; None: routed to a person
    match: float = 0.0

    def to_dict(self) -> dict:
        return {"answer": self.answer, "faq_question": self.question, "match": round(self.match, 4)}


@dataclass
class Faq:
    entries: list[FaqEntry] = field(default_factory=list)
    min_match: float = 0.3
    features: TextFeatures = field(default_factory=TextFeatures)

    def __post_init__(self) -> None:
        self._slots = [set(self.features.transform_one(e.question).tolist()) for e in self.entries]

    def suggest(self, text: str, intent: str | None) -> Suggestion:
        """The best entry of the message's intent (any entry when the intent is
        unknown to the FAQ), if it matches well enough."""
        x = set(self.features.transform_one(text).tolist())
        best, score = None, 0.0
        for entry, slots in zip(self.entries, self._slots):
            if intent in (None, UNKNOWN) or entry.intent != intent or not slots:
                continue
            share = len(x & slots) / len(slots)
            if share > score:
                best, score = entry, share
        if best is None or score < self.min_match:
            return Suggestion(ROUTE, None, score)
        return Suggestion(best.answer, best.question, score)


def load_faq(path: str | Path) -> Faq:
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as exc:
        raise FaqError(f"cannot read {path}: {exc.strerror or exc}") from None
    entries = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise FaqError(f"{path}:{n}: not valid JSON") from None
        if not isinstance(d, dict) or not all(isinstance(d.get(k), str) and d[k].strip()
                                              for k in ("intent", "question", "answer")):
            raise FaqError(f"{path}:{n}: needs non-empty strings 'intent', 'question' and 'answer'")
        entries.append(FaqEntry(d["intent"], d["question"], d["answer"]))
    if not entries:
        raise FaqError(f"{path} holds no entry")
    return Faq(entries)
