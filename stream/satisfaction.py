"""An item's satisfaction: its latest reviews, its own normal, and when it drops.

The item's document (JSON, ``voice:item:{item_id}`` in Redis) keeps its
latest ``RECENT`` reviews as ``[ts, positive (1/0), rating or null]``, its
normal (the positive share as an exponential average over all its reviews,
``1/NORMAL_SPAN`` a review), the terms of its negative reviews lately
(decayed counts) and its two latest negative snippets (text: dropped once
older than the text retention, and by erasure).

A drop is the share of positive reviews among the latest ``WINDOW`` falling
``DROP`` or more below the normal, once the item has ``MIN_REVIEWS``; it is
raised once until the share is back within ``DROP / 2`` of the normal.

>>> doc = new_item()
>>> for i in range(40):
...     _ = add_review(doc, float(i), True, 5.0, [], None)
>>> [add_review(doc, 100.0 + i, False, 1.0, ["物流"], ("u1", f"r{i}", "物流太慢")) for i in range(8)][-1] is not None
True
>>> satisfaction(doc, 200.0, 86400.0)["negative_terms"]
['物流']
"""

from __future__ import annotations

RECENT = 50
WINDOW = 20
NORMAL_SPAN = 50
MIN_REVIEWS = 30
DROP = 0.25
TERMS = 20
TERM_DECAY = 0.95  # a negative review's terms weigh this much less at each later negative review
SNIPPETS, SNIPPET_CHARS = 2, 80


def new_item() -> dict:
    return {"n": 0, "recent": [], "normal": None, "terms": {}, "snippets": [], "dropped": False}


def _share(recent: list) -> float | None:
    return sum(r[1] for r in recent) / len(recent) if recent else None


def add_review(doc: dict, ts: float, positive: bool, rating: float | None, terms: list[str],
               snippet: tuple[str, str, str] | None) -> dict | None:
    """Learn one review (``snippet``: user, review id, text of a negative one);
    the drop, if this review makes one: share, normal, how far, terms, snippets."""
    doc["n"] += 1
    doc["recent"] = (doc["recent"] + [[ts, int(positive), rating]])[-RECENT:]
    normal = doc["normal"]
    doc["normal"] = float(positive) if normal is None else normal + (positive - normal) / NORMAL_SPAN
    if not positive:
        decayed = {t: c * TERM_DECAY for t, c in doc["terms"].items()}
        for t in terms:
            decayed[t] = decayed.get(t, 0.0) + 1.0
        doc["terms"] = dict(sorted(decayed.items(), key=lambda kv: -kv[1])[:TERMS])
        if snippet is not None:
            user, review_id, text = snippet
            doc["snippets"] = (doc["snippets"] + [[ts, user, review_id, text[:SNIPPET_CHARS]]])[-SNIPPETS:]
    if normal is None or doc["n"] < MIN_REVIEWS:
        return None
    share = _share(doc["recent"][-WINDOW:])
    assert share is not None
    if doc["dropped"]:
        if share >= normal - DROP / 2:
            doc["dropped"] = False
        return None
    if share > normal - DROP:
        return None
    doc["dropped"] = True
    return {"positive_share": share, "normal": normal, "drop": normal - share,
            "negative_terms": top_terms(doc), "snippets": [s[3] for s in doc["snippets"]]}


def top_terms(doc: dict, k: int = 5) -> list[str]:
    return [t for t, _ in sorted(doc["terms"].items(), key=lambda kv: -kv[1])[:k]]


def prune_text(doc: dict, now: float, ttl_s: float) -> None:
    """Snippets older than the text retention go."""
    doc["snippets"] = [s for s in doc["snippets"] if s[0] >= now - ttl_s]


def forget_user(doc: dict, user_id: str) -> int:
    """Take the user's snippets out; how many there were."""
    before = len(doc["snippets"])
    doc["snippets"] = [s for s in doc["snippets"] if s[1] != user_id]
    return before - len(doc["snippets"])


def satisfaction(doc: dict, now: float, ttl_s: float) -> dict:
    """What ``/items/{item_id}/satisfaction`` shows."""
    prune_text(doc, now, ttl_s)
    recent = doc["recent"]
    ratings = [r[2] for r in recent if r[2] is not None]
    return {
        "reviews": doc["n"],
        "recent_reviews": len(recent),
        "positive_share": _share(recent),
        "positive_share_last_20": _share(recent[-WINDOW:]),
        "normal_positive_share": doc["normal"],
        "mean_rating": sum(ratings) / len(ratings) if ratings else None,
        "negative_terms": top_terms(doc),
        "negative_snippets": [s[3] for s in doc["snippets"]],
        "dropped": doc["dropped"],
    }
