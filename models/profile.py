"""What shopstream remembers about one user: recent items, purchases, features.

A profile learns from the user's events one at a time and is plain data, so
it can be stored as one small JSON document per user.

>>> p = UserProfile("u1")
>>> p.learn_one("view", "i1", 100.0, session_id="s1")
True
>>> p.learn_one("purchase", "i1", 160.0, session_id="s1", price=20.0, quantity=2)
False
>>> p.counts["purchase"], p.revenue, p.sessions, p.session_items()
(1, 40.0, 1, ['i1'])
>>> p.purchased
['i1']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from models.features import UserFeatures

# Without a session id from the shop, a gap this long (seconds) starts a new
# session: the usual web-analytics convention.
SESSION_GAP_S = 1800.0


@dataclass
class UserProfile:
    """One user's running profile.

    ``recent`` holds the user's most recent distinct items (oldest first),
    across sessions; its last ``in_session`` belong to the current session.
    ``purchased`` holds the most recent distinct purchases.
    Both are bounded so a profile never grows with the user's history.
    """

    user_id: str
    session_id: str | None = None
    recent: list[str] = field(default_factory=list)
    in_session: int = 0
    purchased: list[str] = field(default_factory=list)
    seen_event_ids: list[str] = field(default_factory=list)
    features: UserFeatures = field(default_factory=UserFeatures)
    segment: int | None = None
    propensity: float | None = None
    last_example_ts: float | None = None
    closed_at: float | None = None  # last_seen of the latest session closed for the models
    # Fraud context: the latest purchases ([ts, item, order, amount]) and the
    # current session's carts ([item, ts]).
    recent_purchases: list[list] = field(default_factory=list)
    carts: list[list] = field(default_factory=list)
    churn_alerted_at: float | None = None  # last_seen when a churn episode was raised
    offers: dict[str, float] = field(default_factory=dict)  # declared campaign -> when decided
    # Decisions whose outcome window is open, with their outcome so far (stream/campaigns.py).
    exposures: list[list] = field(default_factory=list)
    max_recent: int = 20
    max_purchased: int = 50
    max_seen_event_ids: int = 32
    max_recent_purchases: int = 30
    max_carts: int = 20

    # Counts, spend and times live in ``features``, the one running record.
    @property
    def first_seen(self) -> float | None:
        return self.features.first_ts

    @property
    def last_seen(self) -> float | None:
        return self.features.last_ts

    @property
    def counts(self) -> dict[str, int]:
        f = self.features
        return {"view": f.views, "click": f.clicks, "cart": f.carts, "purchase": f.purchases}

    @property
    def revenue(self) -> float:
        return self.features.revenue

    @property
    def sessions(self) -> int:
        return self.features.sessions

    @property
    def events(self) -> int:
        return sum(self.counts.values())

    def session_items(self) -> list[str]:
        """The current session's distinct items, oldest first."""
        return self.recent[len(self.recent) - self.in_session :]

    def is_new_session(self, ts: float, session_id: str | None) -> bool:
        if self.last_seen is None:
            return True
        if session_id is not None:
            return session_id != self.session_id
        return ts - self.last_seen > SESSION_GAP_S

    def learn_one(
        self,
        event_type: str,
        item_id: str,
        ts: float,
        session_id: str | None = None,
        price: float | None = None,
        quantity: int = 1,
        event_id: str | None = None,
        category: str | None = None,
        order_id: str | None = None,
    ) -> bool:
        """Update with one event; return whether it started a new session.

        The last few ``event_id`` are remembered so that a redelivered event
        can be recognised (see ``seen_event_ids``)."""
        if event_id is not None:
            self.seen_event_ids.append(event_id)
            if len(self.seen_event_ids) > self.max_seen_event_ids:
                del self.seen_event_ids[0]
        new_session = self.is_new_session(ts, session_id)
        if new_session:
            self.in_session = 0
            self.carts = []
        self.session_id = session_id
        in_session = False
        if item_id in self.recent:
            in_session = self.recent.index(item_id) >= len(self.recent) - self.in_session
            self.recent.remove(item_id)
        self.recent.append(item_id)
        if not in_session:
            self.in_session += 1
        if len(self.recent) > self.max_recent:
            del self.recent[0]
            self.in_session = min(self.in_session, len(self.recent))
        self.features.learn_one(
            event_type, ts, price=price, quantity=quantity, category=category,
            new_session=new_session,
        )
        if event_type == "cart":
            self.carts.append([item_id, ts])
            del self.carts[: -self.max_carts]
        if event_type == "purchase":
            self.recent_purchases.append([ts, item_id, order_id, (price or 0.0) * quantity])
            del self.recent_purchases[: -self.max_recent_purchases]
            if item_id in self.purchased:
                self.purchased.remove(item_id)
            self.purchased.append(item_id)
            if len(self.purchased) > self.max_purchased:
                del self.purchased[0]
        return new_session

    def summary(self) -> dict[str, Any]:
        """The profile in stable, shop-language fields (for exports)."""
        return {
            "user_id": self.user_id,
            "events": self.events,
            "views": self.counts.get("view", 0),
            "clicks": self.counts.get("click", 0),
            "carts": self.counts.get("cart", 0),
            "purchases": self.counts.get("purchase", 0),
            "revenue": round(self.revenue, 2),
            "sessions": self.sessions,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UserProfile":
        data = dict(data)
        data["features"] = UserFeatures.from_dict(data.get("features") or {})
        return cls(**data)
