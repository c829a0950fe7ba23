"""Outcomes joined to marketing decisions, and the campaign report.

Every decision (treated or held out, :mod:`stream.actions`) opens a window of
``SHOPSTREAM_OFFER_WINDOW_DAYS`` of event time on the user's profile (its
``exposures``). Each later event of the user inside the window counts
towards that decision's outcome: a session it opens is a visit, a purchase
adds to purchases and revenue. The counts also go, as integer increments, to
one hash of campaign totals per (kind, campaign, segment at the decision,
day of the decision, group): how many were decided, how many visited or
bought, and the revenue with its sum of squares (in cents, so that totals
are exact whatever the batches). The profile and the totals are written by
the batch's one atomic commit with its offsets: each event counts once.

Totals only grow, so a decision whose user never comes back counts as a
decision with no outcome, and nothing has to be closed when a window ends.
Decisions whose window is still open count too: both groups are drawn
alike over time, so the difference stays unbiased, only diluted; the report
says how many are still open.

The report compares the treated with the held out: the incremental
conversions (and revenue) are the treated's rate minus the held-out rate,
times the treated, with a 95 % interval from the two groups' variances
(normal approximation).

>>> counts = {}
>>> for i in range(1000):
...     group = "held_out" if i % 10 == 0 else "treated"
...     add(counts, ("offer", "spring", 2, 19800, group, "n"), 1)
...     if i % 4 == 0:
...         add(counts, ("offer", "spring", 2, 19800, group, "buyers"), 1)
>>> row = report(counts, now=19810 * 86400.0, window_days=7)[0]
>>> row["treated"]["n"], row["held_out"]["n"], row["treated"]["conversion"], row["held_out"]["conversion"]
(900, 100, 0.2222, 0.5)
>>> row["incremental_conversions"]["value"], row["open"]
(-250.0, 0)
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable

from models.profile import UserProfile

DAY_S = 86400.0
GROUPS = ("treated", "held_out")
# n: decided; visitors / buyers: decisions with at least one visit / purchase.
STATS = ("n", "visitors", "visits", "buyers", "purchases", "revenue_cents", "revenue_sq")
Z95 = 1.959964
# Open windows a profile follows at most; the oldest stops being followed.
MAX_EXPOSURES = 16
SEP = "\t"

# An exposure in the profile: [kind, campaign, ts, treated, segment, visits,
# purchases, revenue_cents, action_id]
KIND, CAMPAIGN, TS, TREATED, SEGMENT, VISITS, PURCHASES, CENTS, ACTION = range(9)


def day_of(ts: float) -> int:
    return int(ts // DAY_S)


def field_name(kind: str, campaign: str, segment: int | None, day: int, group: str, stat: str) -> str:
    return SEP.join((kind, campaign, "-" if segment is None else str(segment), str(day), group, stat))


def add(counts: dict[str, int], key: tuple, increment: int) -> None:
    name = field_name(*key)
    counts[name] = counts.get(name, 0) + increment


@dataclass(frozen=True)
class Converted:
    """An exposure's first purchase in its window (for the uplift learner)."""

    action_id: str
    kind: str
    campaign: str
    ts: float


def record(profile: UserProfile, kind: str, campaign: str, ts: float, treated: bool,
           action_id: str, counts: dict[str, int]) -> None:
    """A decision: its window opens on the profile and it counts as decided."""
    exposures = profile.exposures
    exposures.append([kind, campaign, ts, int(treated), profile.segment, 0, 0, 0, action_id])
    del exposures[:-MAX_EXPOSURES]
    add(counts, (kind, campaign, profile.segment, day_of(ts), GROUPS[not treated], "n"), 1)


def join(profile: UserProfile, ts: float, new_session: bool, amount: float | None,
         window_s: float, counts: dict[str, int]) -> list[Converted]:
    """One event of the user (``amount``: a purchase's value, else None)
    counted towards every decision whose window holds it; windows that ended
    before it are dropped. Returns the decisions it converted."""
    converted: list[Converted] = []
    keep = []
    for e in profile.exposures:
        start = e[TS]
        if ts >= start + window_s:
            continue  # its window is over: nothing more can count
        keep.append(e)
        if ts <= start:
            continue  # decided at or after this event (it may have caused it)
        key = (e[KIND], e[CAMPAIGN], e[SEGMENT], day_of(start), GROUPS[not e[TREATED]])
        if new_session:
            e[VISITS] += 1
            add(counts, (*key, "visits"), 1)
            if e[VISITS] == 1:
                add(counts, (*key, "visitors"), 1)
        if amount is not None:
            cents = round(amount * 100)
            before = e[CENTS]
            e[PURCHASES] += 1
            e[CENTS] = before + cents
            add(counts, (*key, "purchases"), 1)
            add(counts, (*key, "revenue_cents"), cents)
            add(counts, (*key, "revenue_sq"), (before + cents) ** 2 - before**2)
            if e[PURCHASES] == 1:
                add(counts, (*key, "buyers"), 1)
                converted.append(Converted(e[ACTION], e[KIND], e[CAMPAIGN], ts))
    if len(keep) != len(profile.exposures):
        profile.exposures[:] = keep
    return converted


def _interval(value: float, se: float, scale: float = 1.0, digits: int = 2) -> dict[str, float]:
    return {"value": round(value * scale, digits), "low": round((value - Z95 * se) * scale, digits),
            "high": round((value + Z95 * se) * scale, digits)}


def _group(t: dict[str, int]) -> dict[str, Any]:
    n = t.get("n", 0)
    if not n:
        return {"n": 0}
    revenue = t.get("revenue_cents", 0) / 100
    return {"n": n, "visit_rate": round(t.get("visitors", 0) / n, 4),
            "conversion": round(t.get("buyers", 0) / n, 4), "visits": t.get("visits", 0),
            "buyers": t.get("buyers", 0), "purchases": t.get("purchases", 0),
            "revenue": round(revenue, 2), "revenue_per_user": round(revenue / n, 4)}


def _rate_diff(t: dict[str, int], h: dict[str, int], stat: str) -> tuple[float, float]:
    nt, nh = t["n"], h["n"]
    pt, ph = t.get(stat, 0) / nt, h.get(stat, 0) / nh
    return pt - ph, math.sqrt(pt * (1 - pt) / nt + ph * (1 - ph) / nh)


def _mean_var(t: dict[str, int]) -> tuple[float, float]:
    n = t["n"]
    mean = t.get("revenue_cents", 0) / 100 / n
    second = t.get("revenue_sq", 0) / 10_000 / n
    var = max(second - mean * mean, 0.0) * n / (n - 1) if n > 1 else 0.0
    return mean, var


def compare(t: dict[str, int], h: dict[str, int], cost: float | None = None) -> dict[str, Any]:
    """The treated against the held out: rates, incremental conversions and
    revenue with 95 % intervals, and the cost of the treated offers."""
    out: dict[str, Any] = {"treated": _group(t), "held_out": _group(h)}
    nt, nh = t.get("n", 0), h.get("n", 0)
    if cost is not None:
        out["cost"] = round(cost * nt, 2)
    if not nt or not nh:
        return out
    d, se = _rate_diff(t, h, "buyers")
    out["uplift_points"] = _interval(d, se, 100.0)
    out["incremental_conversions"] = _interval(d, se, nt, 1)
    d, se = _rate_diff(t, h, "visitors")
    out["incremental_visitors"] = _interval(d, se, nt, 1)
    (mt, vt), (mh, vh) = _mean_var(t), _mean_var(h)
    out["incremental_revenue"] = _interval(mt - mh, math.sqrt(vt / nt + vh / nh), nt)
    if cost is not None:
        net = out["incremental_revenue"]
        out["incremental_revenue_after_cost"] = {k: round(v - cost * nt, 2) for k, v in net.items()}
    return out


def totals(counts: dict[str, int], now: float | None = None, window_days: float = 7.0
           ) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(kind, campaign, segment) -> {group: {stat: total}, "open": decisions whose
    window is not over by ``now``}; segment "all" sums the segments."""
    out: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(
        lambda: {"treated": defaultdict(int), "held_out": defaultdict(int), "open": 0})
    for name, value in counts.items():
        kind, campaign, segment, day, group, stat = name.split(SEP)
        value = int(value)
        for seg in (segment, "all"):
            entry = out[kind, campaign, seg]
            entry[group][stat] += value
            if stat == "n" and now is not None and (int(day) + 1) * DAY_S + window_days * DAY_S > now:
                entry["open"] += value
    return out


def report(counts: dict[str, int], now: float | None = None, window_days: float = 7.0,
           costs: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """One row per action kind, campaign and segment (and "all" segments).
    ``open``: decisions made in days whose window may not be over by ``now``."""
    costs = costs or {}
    rows = []
    for (kind, campaign, segment), entry in sorted(totals(counts, now, window_days).items()):
        rows.append({"kind": kind, "campaign": campaign, "segment": segment,
                     "open": entry["open"],
                     **compare(entry["treated"], entry["held_out"], costs.get(campaign))})
    return rows


def summary(rows: Iterable[dict[str, Any]], day: int) -> dict[str, Any]:
    """The ``campaign-results`` message at a day's close: every campaign's
    row over all segments."""
    return {"result_id": f"campaign-results:{day}", "day": day, "ts": (day + 1) * DAY_S,
            "campaigns": [r for r in rows if r["segment"] == "all"]}
