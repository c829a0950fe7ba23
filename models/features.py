"""Per-user behaviour features, maintained one event at a time.

``UserFeatures`` is the one definition of what segments and propensity see,
used alike by the live worker and by replay. Its state is a handful of
numbers (JSON-ready with ``to_dict``) stored inside the user's profile
document, and it never grows with the user's history.

>>> f = UserFeatures()
>>> f.learn_one("view", 0.0, price=20.0, quantity=1, category="books", new_session=True)
>>> f.learn_one("cart", 60.0, price=20.0, quantity=1, category="books", new_session=False)
>>> f.learn_one("purchase", 120.0, price=20.0, quantity=2, category="books", new_session=False)
>>> f.learn_one("view", 86400.0, price=80.0, quantity=1, category="shoes", new_session=True)
>>> v = f.values(now=2 * 86400.0)
>>> v["sessions"], v["purchases"], v["revenue"], v["mean_order_value"]
(2.0, 1.0, 40.0, 40.0)
>>> v["recency_days"], v["age_days"], v["categories"], v["carts_per_view"]
(1.0, 2.0, 2.0, 0.5)
>>> round(v["session_gap_mean_h"], 3), v["events_per_session"]
(23.967, 2.0)
>>> UserFeatures.from_dict(f.to_dict()) == f
True

Semantics worth knowing:

* **Sessions** are the caller's: ``new_session`` says whether this event
  opens one (``UserProfile.learn_one`` returns exactly that); a user's
  first event always does.
* **Orders**: an order is a session with at least one purchase (the
  contract's ``order_id`` is optional), so ``mean_order_value`` is revenue
  per buying session.
* **Out-of-order events** (``ts`` before the latest one seen) count in every
  total, move ``first_ts`` back if earlier, never move ``last_ts`` back, and
  add no session gap: gaps are only taken forward in time, so none is
  negative. The last-events window follows arrival order.
* **Duplicates** are not detected here: the same event learnt twice counts
  twice. The processor drops repeated ``event_id`` before calling.
* Deterministic: the state depends only on the sequence of calls.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

# One letter per event type in the last-events window (compact JSON).
_LETTER = {"view": "v", "click": "k", "cart": "c", "purchase": "p"}

FEATURE_NAMES: tuple[str, ...] = (
    "recency_days", "age_days", "events", "sessions", "events_per_session",
    "views", "clicks", "carts", "purchases", "orders", "revenue", "mean_order_value",
    "mean_price", "clicks_per_view", "carts_per_view", "purchases_per_view",
    "purchases_per_cart", "sessions_per_week", "session_gap_mean_h", "session_gap_std_h",
    "recent_cart_share", "categories", "session_events", "session_views", "session_carts",
    "session_purchases",
)


def category_key(category: str) -> int:
    """A stable 32-bit key for a category name (``hash()`` is salted per process)."""
    return zlib.crc32(category.encode("utf-8"))


@dataclass
class UserFeatures:
    """Running behaviour features of one user.

    ``last_n`` events are kept as letters for ``recent_cart_share``; at most
    ``max_categories`` distinct categories are remembered (as 32-bit keys), so
    ``categories`` saturates there.
    """

    first_ts: float | None = None
    last_ts: float | None = None
    views: int = 0
    clicks: int = 0
    carts: int = 0
    purchases: int = 0
    orders: int = 0
    sessions: int = 0
    revenue: float = 0.0
    price_sum: float = 0.0
    priced: int = 0
    # Welford over the gaps between sessions, in hours.
    gaps: int = 0
    gap_mean_h: float = 0.0
    gap_m2: float = 0.0
    recent: str = ""
    category_keys: list[int] = field(default_factory=list)
    # The current session.
    session_start_ts: float | None = None
    session_first_category: int = 0  # category_keys from here on were first seen this session
    session_events: int = 0
    session_views: int = 0
    session_carts: int = 0
    session_purchases: int = 0
    last_n: int = 10
    max_categories: int = 32

    def learn_one(
        self,
        event_type: str,
        ts: float,
        *,
        price: float | None = None,
        quantity: int = 1,
        category: str | None = None,
        new_session: bool = False,
    ) -> None:
        """Update with one event (``view``, ``click``, ``cart`` or ``purchase``)."""
        if new_session or self.sessions == 0:
            if self.last_ts is not None and ts > self.last_ts:
                gap_h = (ts - self.last_ts) / 3600.0
                self.gaps += 1
                delta = gap_h - self.gap_mean_h
                self.gap_mean_h += delta / self.gaps
                self.gap_m2 += delta * (gap_h - self.gap_mean_h)
            self.sessions += 1
            self.session_start_ts = ts
            self.session_first_category = len(self.category_keys)
            self.session_events = self.session_views = self.session_carts = self.session_purchases = 0
        self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)
        self.session_events += 1
        if event_type == "view":
            self.views += 1
            self.session_views += 1
        elif event_type == "click":
            self.clicks += 1
        elif event_type == "cart":
            self.carts += 1
            self.session_carts += 1
        elif event_type == "purchase":
            self.purchases += 1
            if self.session_purchases == 0:
                self.orders += 1
            self.session_purchases += 1
            self.revenue += (price or 0.0) * quantity
        if price is not None:
            self.price_sum += price
            self.priced += 1
        self.recent = (self.recent + _LETTER.get(event_type, "?"))[-self.last_n :]
        if category is not None and len(self.category_keys) < self.max_categories:
            key = category_key(category)
            if key not in self.category_keys:
                self.category_keys.append(key)

    def values(self, now: float) -> dict[str, float]:
        """The features as of event time ``now`` (epoch seconds), named as in ``FEATURE_NAMES``.

        Units: ``recency_days`` and ``age_days`` (since first seen) in days,
        ``session_gap_*_h`` in hours (between one session's last event and
        the next one's first), ``sessions_per_week`` is return visits per
        week since first seen, ``mean_price`` the mean price of every priced
        event (views included), ``session_*`` count the current session,
        ``recent_cart_share`` the carts among the last ``last_n`` events.
        Ratios of an empty denominator are 0; ``now`` before the last event
        gives recency 0, never a negative one."""
        last = self.last_ts if self.last_ts is not None else now
        first = self.first_ts if self.first_ts is not None else now
        age_days = max(now - first, 0.0) / 86400.0
        events = self.views + self.clicks + self.carts + self.purchases
        views = max(self.views, 1)
        gap_var = self.gap_m2 / (self.gaps - 1) if self.gaps > 1 else 0.0
        return {
            "recency_days": max(now - last, 0.0) / 86400.0,
            "age_days": age_days,
            "events": float(events),
            "sessions": float(self.sessions),
            "events_per_session": events / max(self.sessions, 1),
            "views": float(self.views),
            "clicks": float(self.clicks),
            "carts": float(self.carts),
            "purchases": float(self.purchases),
            "orders": float(self.orders),
            "revenue": self.revenue,
            "mean_order_value": self.revenue / max(self.orders, 1),
            "mean_price": self.price_sum / max(self.priced, 1),
            "clicks_per_view": self.clicks / views,
            "carts_per_view": self.carts / views,
            "purchases_per_view": self.purchases / views,
            "purchases_per_cart": self.purchases / max(self.carts, 1),
            # Returns per week since first seen (over at least a day, so that
            # two sessions in an hour do not read as a habit).
            "sessions_per_week": (self.sessions - 1) * 7.0 / max(age_days, 1.0) if self.sessions else 0.0,
            "session_gap_mean_h": self.gap_mean_h,
            "session_gap_std_h": math.sqrt(gap_var),
            "recent_cart_share": self.recent.count("c") / len(self.recent) if self.recent else 0.0,
            "categories": float(len(self.category_keys)),
            "session_events": float(self.session_events),
            "session_views": float(self.session_views),
            "session_carts": float(self.session_carts),
            "session_purchases": float(self.session_purchases),
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserFeatures:
        return cls(**data)
