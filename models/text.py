"""What customers write: text features, sentiment and intent, learnt online.

**Features.** ``TextFeatures`` cuts a text into tokens that work for Chinese
and English alike: every CJK character is a token (Chinese has no spaces),
every run of Latin letters or digits is a word, every other visible
character (！, ?, 😡) is a token. The features are the tokens, the pairs of
neighbouring tokens (so Chinese character bigrams such as 物流, English word
bigrams such as "not working") and the character 3-grams inside Latin words
longer than three letters (so "cancelling" and "canceling" share most of
theirs). Each feature is hashed (CRC-32) into ``2**bits`` slots: the space
is bounded whatever the shop's vocabulary. On the two data sets of the
backtest these measured better than jieba's words (README, "Customer voice").

**Models.** Both are logistic models trained one text at a time with
AdaGrad (a learning rate per slot, so rare n-grams still move), features
scaled by ``1/sqrt(n)``. ``Sentiment`` learns from ratings (4-5 positive,
1-2 negative, 3 is neither and teaches nothing) and answers ``None`` until
it has seen ``min_seen`` texts of each side: no confident score from
nothing. ``Intent`` is the multinomial (softmax) version over the intents
agents gave so far; below ``threshold``, or for a text less than
``min_familiar`` of whose features were ever seen in training, its answer is
``unknown``.

>>> sentiment = Sentiment(min_seen=2)
>>> sentiment.predict_proba_one("质量很好") is None
True
>>> for _ in range(20):
...     sentiment.learn_one("质量很好，物流很快", 5)
...     sentiment.learn_one("质量太差，物流太慢", 1)
...     sentiment.learn_one("还行吧", 3)
>>> sentiment.seen
{'positive': 20, 'negative': 20}
>>> sentiment.predict_proba_one("物流很快") > 0.5 > sentiment.predict_proba_one("太慢了")
True
>>> intent = Intent(threshold=0.6)
>>> for _ in range(20):
...     intent.learn_one("where is my order", "track_order")
...     intent.learn_one("I want my money back", "get_refund")
>>> intent.predict_one("where is my parcel order")
'track_order'
>>> intent.predict_one("hello")
'unknown'
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field

import numpy as np

UNKNOWN = "unknown"
POSITIVE, NEGATIVE = "positive", "negative"
# A CJK ideograph, a Latin/digit word (with an English apostrophe part), or
# any other visible character (punctuation, emoji).
_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\W_\u3400-\u9fff\uf900-\ufaff]+(?:'[a-z]+)?|[^\w\s]")


def tokens(text: str) -> list[str]:
    """The text's tokens, lower-cased.

    >>> tokens("物流太慢! Battery won't charge")
    ['物', '流', '太', '慢', '!', 'battery', "won't", 'charge']
    """
    return _TOKEN.findall(text.lower())


def rating_label(rating: float | None) -> bool | None:
    """What a rating teaches: 4-5 positive, 1-2 negative, 3 (or none) nothing.

    >>> rating_label(5), rating_label(2), rating_label(3), rating_label(None)
    (True, False, None, None)
    """
    if rating is None or 2 < rating < 4:
        return None
    return rating >= 4


@dataclass(frozen=True, slots=True)
class TextFeatures:
    """Hashed features of a text: distinct slots in ``[0, 2**bits)``.

    >>> f = TextFeatures(bits=10)
    >>> x = f.transform_one("物流很快")
    >>> len(x), int(x.max()) < 2**10
    (7, True)
    >>> f.terms("物流很快")
    ['物', '流', '很', '快', '物流', '流很', '很快']
    """

    bits: int = 18
    subword: int = 3  # character n-grams inside Latin words longer than this

    def terms(self, text: str) -> list[str]:
        toks = tokens(text)
        cjk = [len(t) == 1 and is_cjk(t) for t in toks]
        out = toks + [a + b if ca and cb else f"{a} {b}"
                      for a, b, ca, cb in zip(toks, toks[1:], cjk, cjk[1:])]
        n = self.subword
        for t in toks:
            if len(t) > n and t.isascii():
                w = f"<{t}>"
                out += ["#" + w[i:i + n] for i in range(len(w) - n + 1)]
        return out

    def hashed(self, text: str) -> dict[str, int]:
        """Each distinct term of the text and its slot."""
        mask = (1 << self.bits) - 1
        return {t: zlib.crc32(t.encode()) & mask for t in dict.fromkeys(self.terms(text))}

    def transform_one(self, text: str) -> np.ndarray:
        return slots_of(self.hashed(text))


def slots_of(hashed: dict[str, int]) -> np.ndarray:
    """The distinct slots of :meth:`TextFeatures.hashed` terms."""
    slots = set(hashed.values())
    return np.fromiter(slots, dtype=np.int64, count=len(slots))


def is_cjk(token: str) -> bool:
    """A CJK ideograph (one character)."""
    return "\u3400" <= token <= "\u9fff" or "\uf900" <= token <= "\ufaff"


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-35.0, min(35.0, z))))


Text = str | np.ndarray  # a text, or its TextFeatures.transform_one


@dataclass
class Sentiment:
    """P(a text is positive), learnt online from ratings; None before ``min_seen``
    texts of each side."""

    features: TextFeatures = field(default_factory=TextFeatures)
    lr: float = 0.5
    min_seen: int = 100
    seen: dict[str, int] = field(default_factory=lambda: {POSITIVE: 0, NEGATIVE: 0})

    def __post_init__(self) -> None:
        size = 1 << self.features.bits
        self.w = np.zeros(size, dtype=np.float32)
        self.g2 = np.full(size, 1e-6, dtype=np.float32)  # AdaGrad's sum of squared gradients
        self.bias = 0.0
        self.bias_g2 = 1e-6

    def _x(self, x: Text) -> np.ndarray:
        return self.features.transform_one(x) if isinstance(x, str) else x

    def _z(self, slots: np.ndarray) -> float:
        if not len(slots):
            return self.bias
        return float(self.w[slots].sum()) / math.sqrt(len(slots)) + self.bias

    @property
    def ready(self) -> bool:
        return min(self.seen.values()) >= self.min_seen

    def predict_proba_one(self, x: Text) -> float | None:
        return _sigmoid(self._z(self._x(x))) if self.ready else None

    def raw_proba_one(self, x: Text) -> float:
        """The score whether or not enough was seen (the backtest scores every text)."""
        return _sigmoid(self._z(self._x(x)))

    def learn_one(self, x: Text, rating: float | None) -> None:
        self.learn_label(x, rating_label(rating))

    def negative_terms(self, text: str | dict[str, int], k: int = 3) -> list[str]:
        """The text's words (Latin words, Chinese character pairs) that push its
        score down most, worst first.

        >>> s = Sentiment(min_seen=1)
        >>> for _ in range(30):
        ...     s.learn_one("物流太慢了", 1)
        ...     s.learn_one("很好看", 5)
        >>> sorted(s.negative_terms("物流太慢"))
        ['太慢', '流太', '物流']
        """
        hashed = self.features.hashed(text) if isinstance(text, str) else text
        if not hashed:
            return []
        terms = list(hashed)
        weights = self.w[np.fromiter(hashed.values(), dtype=np.int64, count=len(terms))]
        out: list[str] = []
        for i in np.argsort(weights, kind="stable").tolist():
            if weights[i] >= 0 or len(out) == k:
                break
            term = terms[i]
            # Words only: no subwords, English pairs, single characters or punctuation.
            if term[0] != "#" and " " not in term and term.isalnum() and (len(term) > 1 or term.isascii()):
                out.append(term)
        return out

    def learn_label(self, x: Text, positive: bool | None) -> None:
        if positive is None:
            return
        slots = self._x(x)
        self.seen[POSITIVE if positive else NEGATIVE] += 1
        g = _sigmoid(self._z(slots)) - float(positive)
        self.bias_g2 += g * g
        self.bias -= self.lr * g / math.sqrt(self.bias_g2)
        if len(slots):
            gv = np.float32(g / math.sqrt(len(slots)))
            self.g2[slots] += gv * gv
            self.w[slots] -= np.float32(self.lr) * gv / np.sqrt(self.g2[slots])


@dataclass
class Intent:
    """The intent of a customer-service message, learnt online from agents'
    labels; ``unknown`` below ``threshold``. Weights are kept only for slots
    seen in training (a row per slot, a column per intent)."""

    features: TextFeatures = field(default_factory=TextFeatures)
    lr: float = 1.0
    threshold: float = 0.5
    min_familiar: float = 0.5
    intents: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rows: dict[int, int] = {}  # slot -> row of w and g2
        self.w = np.zeros((0, 0), dtype=np.float32)
        self.g2 = np.zeros((0, 0), dtype=np.float32)
        self.bias = np.zeros(0)

    def _x(self, x: Text) -> np.ndarray:
        return self.features.transform_one(x) if isinstance(x, str) else x

    def _proba(self, slots: np.ndarray) -> np.ndarray:
        rows = [r for r in map(self.rows.get, slots.tolist()) if r is not None]
        z = self.bias.copy()
        if rows:
            z += self.w[rows].sum(axis=0) / math.sqrt(len(slots))
        z -= z.max()
        p = np.exp(z)
        return p / p.sum()

    def predict_proba_one(self, x: Text) -> dict[str, float]:
        if not self.intents:
            return {}
        return dict(zip(self.intents, self._proba(self._x(x)).tolist()))

    def best_one(self, x: Text) -> tuple[str, float]:
        """The likeliest intent and its probability (``unknown``, 0 before any label)."""
        if not self.intents:
            return UNKNOWN, 0.0
        p = self._proba(self._x(x))
        k = int(p.argmax())
        return self.intents[k], float(p[k])

    def familiar(self, x: Text) -> float:
        """The share of the text's features seen in training: a text made of
        what no label ever showed is ``unknown`` however the softmax leans."""
        slots = self._x(x)
        return sum(s in self.rows for s in slots.tolist()) / len(slots) if len(slots) else 0.0

    def predict_one(self, x: Text) -> str:
        slots = self._x(x)
        intent, confidence = self.best_one(slots)
        known = confidence >= self.threshold and self.familiar(slots) >= self.min_familiar
        return intent if known else UNKNOWN

    def learn_one(self, x: Text, intent: str) -> None:
        slots = self._x(x)
        if intent not in self.intents:
            self.intents.append(intent)
            self.w = np.hstack([self.w, np.zeros((len(self.w), 1), dtype=np.float32)])
            self.g2 = np.hstack([self.g2, np.full((len(self.g2), 1), 1e-6, dtype=np.float32)])
            self.bias = np.append(self.bias, 0.0)
        p = self._proba(slots)
        p[self.intents.index(intent)] -= 1.0  # the gradient of the log loss in z
        self.bias -= 0.1 * p
        if not len(slots):
            return
        rows = [self._row(s) for s in slots.tolist()]
        g = (p / math.sqrt(len(slots))).astype(np.float32)
        self.g2[rows] += g * g
        self.w[rows] -= np.float32(self.lr) * g / np.sqrt(self.g2[rows])

    def _row(self, slot: int) -> int:
        row = self.rows.get(slot)
        if row is None:
            row = self.rows[slot] = len(self.rows)
            if row >= len(self.w):  # grow by half, at least 1,024 rows
                more = max(1024, len(self.w) // 2)
                k = len(self.intents)
                self.w = np.vstack([self.w, np.zeros((more, k), dtype=np.float32)])
                self.g2 = np.vstack([self.g2, np.full((more, k), 1e-6, dtype=np.float32)])
        return row
