"""Confirmed fraud outcomes meeting the purchases they are about.

Outcomes (chargebacks, confirmed good orders) arrive hours or days after the
purchase. The features seen at purchase time wait for them here, bounded in
number and in event time, and so do outcomes that arrive before their
purchase's row.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

DAY = 86400.0


@dataclass
class PendingPurchase:
    event_id: str
    order_id: str | None
    ts: float
    x: dict[str, float]
    anomaly: float
    score: float = 0.0  # the fraud score given at purchase time


@dataclass
class FraudLabels:
    """Purchases and outcomes waiting for each other, bounded in number and age.

    ``add`` keeps a purchase's features; ``label`` finds the purchases an
    outcome is about (one ``event_id``, or every purchase of an ``order_id``)
    and hands them back once. An outcome may also come first (another
    partition's purchase row still on its way): it waits, and ``add`` of its
    purchase joins at once, returning the outcome. A repeated outcome counts
    as ``duplicates``; one for a purchase dropped for age (``ttl_s`` of event
    time) or room (``max_pending``) as ``expired``; one that waited in vain
    (as long, or evicted by ``max_waiting`` newer ones) as ``unknown``.

    >>> labels = FraudLabels(ttl_s=100.0)
    >>> labels.add(PendingPurchase("e1", "o1", 10.0, {"amount": 5.0}, 0.3))
    >>> labels.add(PendingPurchase("e2", "o1", 11.0, {"amount": 6.0}, 0.4))
    >>> [p.event_id for p in labels.label(True, 50.0, order_id="o1")]
    ['e1', 'e2']
    >>> labels.label(True, 51.0, event_id="e1")  # already known through its order
    []
    >>> labels.label(False, 52.0, event_id="e4")  # before its purchase: waits
    []
    >>> labels.add(PendingPurchase("e4", None, 53.0, {}, 0.2))
    False
    >>> labels.add(PendingPurchase("e3", None, 20.0, {}, 0.1)); labels.label(True, 60.0, event_id="e9")
    []
    >>> labels.expire(now=200.0)
    >>> labels.label(True, 201.0, event_id="e3"), labels.counts()
    ([], {'pending': 0, 'waiting': 0, 'joined': 3, 'duplicates': 1, 'unknown': 1, 'expired': 1})
    """

    ttl_s: float = 30 * DAY
    max_pending: int = 50_000
    max_waiting: int = 10_000
    max_remembered: int = 50_000
    pending: OrderedDict = field(default_factory=OrderedDict)  # event_id -> PendingPurchase
    orders: dict[str, list[str]] = field(default_factory=dict)
    # Outcomes that came before their purchase: key -> (fraud, ts).
    waiting: OrderedDict = field(default_factory=OrderedDict)
    # Purchases already labelled or expired, to tell duplicates and late labels apart.
    done: OrderedDict = field(default_factory=OrderedDict)  # key -> "joined" | "expired"
    joined: int = 0
    duplicates: int = 0
    unknown: int = 0
    expired: int = 0

    def add(self, purchase: PendingPurchase) -> bool | None:
        """Keep a purchase until its outcome; the outcome if it was already here."""
        if purchase.event_id in self.pending or purchase.event_id in self.done:
            return None
        outcome = self.waiting.pop(purchase.event_id, None)
        if outcome is None and purchase.order_id is not None:
            key = f"order:{purchase.order_id}"
            outcome = self.waiting.get(key)  # kept: more of the order may follow
            if outcome is not None:
                self._remember(key, "joined")
        if outcome is not None:
            self.joined += 1
            self._remember(purchase.event_id, "joined")
            return outcome[0]
        self.pending[purchase.event_id] = purchase
        if purchase.order_id is not None:
            self.orders.setdefault(purchase.order_id, []).append(purchase.event_id)
        while len(self.pending) > self.max_pending:
            self._drop(next(iter(self.pending)), "expired")
        return None

    def expire(self, now: float) -> None:
        while self.pending:
            oldest = next(iter(self.pending.values()))
            if oldest.ts + self.ttl_s >= now:
                break
            self._drop(oldest.event_id, "expired")
        while self.waiting:
            key, (_, ts) = next(iter(self.waiting.items()))
            if ts + self.ttl_s >= now:
                break
            del self.waiting[key]
            self._gave_up(key)

    def _drop(self, event_id: str, why: str) -> PendingPurchase:
        purchase = self.pending.pop(event_id)
        if purchase.order_id is not None:
            ids = self.orders.get(purchase.order_id, [])
            if event_id in ids:
                ids.remove(event_id)
            if not ids:
                self.orders.pop(purchase.order_id, None)
        self._remember(event_id, why)
        if purchase.order_id is not None and purchase.order_id not in self.orders:
            self._remember(f"order:{purchase.order_id}", why)
        return purchase

    def _remember(self, key: str, why: str) -> None:
        self.done[key] = why
        while len(self.done) > self.max_remembered:
            self.done.popitem(last=False)

    def label(
        self, fraud: bool, ts: float, event_id: str | None = None, order_id: str | None = None
    ) -> list[PendingPurchase]:
        """The purchases this outcome is about (each handed back once)."""
        if event_id is not None:
            ids, key = ([event_id] if event_id in self.pending else []), event_id
        else:
            ids, key = list(self.orders.get(order_id or "", [])), f"order:{order_id}"
        if ids:
            out = [self._drop(i, "joined") for i in ids]
            self.joined += len(out)
            return out
        why = self.done.get(key)
        if why == "joined" or key in self.waiting:
            self.duplicates += 1
        elif why == "expired":
            self.expired += 1
        else:
            self.waiting[key] = (bool(fraud), ts)
            while len(self.waiting) > self.max_waiting:
                self._gave_up(self.waiting.popitem(last=False)[0])
        return []

    def _gave_up(self, key: str) -> None:
        if self.done.get(key) != "joined":  # an order's outcome may have found purchases
            self.unknown += 1

    def counts(self) -> dict[str, int]:
        return {"pending": len(self.pending), "waiting": len(self.waiting), "joined": self.joined,
                "duplicates": self.duplicates, "unknown": self.unknown, "expired": self.expired}
