"""The synthetic shop with planted churners and fraud, and the truth to judge alerts by.

``PlantedShop`` is :class:`~shop.synthetic.Shop` plus three kinds of hidden
truth, drawn from random streams of their own so that everything else a seed
produces stays as it is:

* **Churners**: a ``churn_share`` of the frequent shoppers (big spenders,
  bargain hunters, window shoppers) stop for good at ``churned_at``, drawn
  uniformly between 2 and ``churn_window_days`` days after the start; no
  session of theirs starts after it.
* **Fraud**: a ``fraud_share`` of the returning users suffer one incident,
  at a uniform time between day 1 and ``fraud_window_days``, of one of four
  kinds (``FRAUD_KINDS``):

  - ``stolen_card_burst``: 4-10 orders of distinct expensive items
    (electronics, computers) within minutes, without browsing;
  - ``amount_spike``: one order of 10-25 of an item in the user's favourite
    category;
  - ``account_takeover``: a session of a few quick views in a category the
    user never cared for, then purchases without a cart;
  - ``device_risk``: an ordinary-looking view, cart and purchase whose
    ``attrs.device_risk`` is high.

  Every purchase carries ``attrs.device_risk`` (legitimate ones ~ Beta(2, 12),
  ``device_risk`` fraud ~ Beta(12, 2), the other kinds like legitimate ones).

* **New customers**: ``new_customer_share`` times ``users`` customers more
  (ids after the population's), who arrive uniformly over the first
  ``new_window_days`` and shop one session as occasional buyers do (a few
  views, usually a purchase). A ``new_return_share`` of them come back, after
  a log-normal gap whose median is ``new_return_days`` (weeks, not the
  regulars' hours), and then keep that gap as their rhythm; the rest never
  come back. Their truth rows have ``new_customer: true`` and ``returns_at``
  (their second session's start, None for one-off customers). Everything
  else a seed produces is the same with or without them, but for where a
  count-limited stream ends. None are planted unless asked for
  (``produce.py --new-customer-share 0.2``).

``labels`` turns purchases into the outcomes a risk team would confirm later
(every purchase, ``delay_s`` after it). ``truth`` rows gain ``churned_at``.
On ``PlantedShop(42, users=500).events(100_000)`` (about 11 days): 5,273
purchases, 64 of them fraud (1.2 %: 39 in stolen-card bursts, 12 device
risk, 9 account takeover, 4 amount spikes) in 27 incidents, and 29 churners
(window shoppers 14, bargain hunters 9, big spenders 6). ``fraud_share`` is a
share of users, not of purchases. Incident events have session ``{user}-t1``
and ids with ``-t1-`` where ordinary ones carry a session number: no model
here reads ids, but a detector that did could cheat.

>>> shop = PlantedShop(seed=3, users=60, fraud_share=0.5)
>>> events = list(shop.events(5000))
>>> kinds = {shop.fraud_events[e.event_id] for e in events if e.event_id in shop.fraud_events}
>>> sorted(kinds)
['account_takeover', 'amount_spike', 'device_risk', 'stolen_card_burst']
>>> all("device_risk" in e.attrs for e in events if e.type == "purchase")
True
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from dataclasses import dataclass

import numpy as np

from stream.events import Event
from shop.synthetic import CATEGORIES, Item, Shop, User

FRAUD_KINDS = ("stolen_card_burst", "amount_spike", "account_takeover", "device_risk")
CHURN_TYPES = ("frequent_big_spender", "bargain_hunter", "window_shopper")
EXPENSIVE = ("electronics", "computers")
DAY_S = 86400.0


@dataclass
class PlantedUser(User):
    churned_at: float | None = None
    incident: tuple[str, float] | None = None  # (fraud kind, time)
    new_customer: bool = False
    returns_at: float | None = None  # a new customer's second session (None: never)

    def truth(self) -> dict:
        row = {**super().truth(), "churned_at": None if self.churned_at is None else round(self.churned_at, 3)}
        if self.new_customer:
            row["new_customer"] = True
            row["returns_at"] = None if self.returns_at is None else round(self.returns_at, 3)
        return row


class PlantedShop(Shop):
    def __init__(
        self,
        seed: int,
        users: int | None = None,
        churn_share: float = 0.1,
        churn_window_days: float = 5.0,
        fraud_share: float = 0.08,
        fraud_window_days: float = 10.0,
        new_customer_share: float = 0.0,
        new_return_share: float = 0.25,
        new_return_days: float = 14.0,
        new_window_days: float = 10.0,
        **kwargs: object,
    ) -> None:
        if not (0.0 <= churn_share <= 1.0 and 0.0 <= fraud_share <= 1.0):
            raise ValueError("churn_share and fraud_share must be between 0 and 1")
        if not (new_customer_share >= 0.0 and 0.0 <= new_return_share <= 1.0):
            raise ValueError("new_customer_share must be >= 0 and new_return_share between 0 and 1")
        if not (new_return_days > 0.0 and new_window_days > 0.0):
            raise ValueError("new_return_days and new_window_days must be > 0")
        self.new_customer_share, self.new_return_share = new_customer_share, new_return_share
        self.new_return_days, self.new_window_days = new_return_days, new_window_days
        self.churn_share, self.churn_window_days = churn_share, churn_window_days
        self.fraud_share, self.fraud_window_days = fraud_share, fraud_window_days
        self.fraud_events: dict[str, str] = {}  # event id -> kind, for events generated so far
        super().__init__(seed, users, **kwargs)  # type: ignore[arg-type]

    def _population(self, rng: np.random.Generator, n: int) -> list[User]:
        base = super()._population(rng, n)
        plant = np.random.default_rng([self.seed, 4])
        out: list[User] = []
        for user in base:
            planted = PlantedUser(**vars(user))
            churn, fraud, u_when, u_kind = plant.random(4).tolist()
            if user.type in CHURN_TYPES and churn < self.churn_share:
                planted.churned_at = self.start_ts + DAY_S * (2.0 + u_when * (self.churn_window_days - 2.0))
            elif user.rhythm_s is not None and fraud < self.fraud_share:
                when = self.start_ts + DAY_S * (1.0 + u_when * (self.fraud_window_days - 1.0))
                planted.incident = (FRAUD_KINDS[int(u_kind * len(FRAUD_KINDS))], when)
            out.append(planted)
        return out + self._new_customers(len(out))

    def _new_customers(self, n: int) -> list[User]:
        """Customers who arrive, shop once, and maybe come back weeks later."""
        rng = np.random.default_rng([self.seed, 7])
        count = int(round(self.new_customer_share * n))
        out: list[User] = []
        for index in range(n, n + count):
            tastes = rng.dirichlet(np.full(len(CATEGORIES), 0.3))
            first = self.start_ts + float(rng.uniform(0.0, self.new_window_days * DAY_S))
            u_return, gap = float(rng.random()), float(rng.lognormal(0.0, 0.5))
            returns_at = None
            if u_return < self.new_return_share:
                returns_at = first + self.new_return_days * DAY_S * gap
            out.append(PlantedUser(index, f"u{index:05d}", "occasional_buyer", tastes,
                                   None if returns_at is None else returns_at - first, first,
                                   new_customer=True, returns_at=returns_at))
        return out

    def _user_events(self, user: User) -> Iterator[Event]:
        assert isinstance(user, PlantedUser)
        legit = self._legit(user)
        if user.incident is None:
            return legit
        return heapq.merge(legit, self._incident(user), key=lambda e: e.ts)

    def _legit(self, user: PlantedUser) -> Iterator[Event]:
        """The user's ordinary traffic, cut where a churner stops; purchases
        carry a device risk score."""
        risk = np.random.default_rng([self.seed, 6, user.index])
        session = None
        base = self._new_customer_events(user) if user.new_customer else super()._user_events(user)
        for event in base:
            if event.session_id != session:
                session = event.session_id
                if user.churned_at is not None and event.ts > user.churned_at:
                    return
            if event.type == "purchase":
                event.attrs = {"device_risk": round(float(risk.beta(2.0, 12.0)), 4)}
            yield event

    def _new_customer_events(self, user: PlantedUser) -> Iterator[Event]:
        """One session at ``first_ts``; for a returning customer a second at
        ``returns_at``, then more at their rhythm."""
        rng = np.random.default_rng([self.seed, 8, user.index])
        yield from self._session(rng, user, 1, user.first_ts)
        if user.returns_at is None or user.rhythm_s is None:
            return
        t = user.returns_at
        for session_no in itertools.count(2):
            t = yield from self._session(rng, user, session_no, t)
            t += float(rng.gamma(2.0, user.rhythm_s / 2.0))

    def _incident(self, user: PlantedUser) -> Iterator[Event]:
        assert user.incident is not None
        kind, t = user.incident
        rng = np.random.default_rng([self.seed, 5, user.index])
        counter = itertools.count(1)
        session_id = f"{user.user_id}-t1"

        def event(type_: str, item: Item, ts: float, **extra: object) -> Event:
            event_id = f"e{self.seed}-{user.user_id}-t1-{next(counter)}"
            if type_ == "purchase":
                self.fraud_events[event_id] = kind
                extra.setdefault("attrs", {"device_risk": round(float(rng.beta(2.0, 12.0)), 4)})
            return Event(event_id=event_id, type=type_, user_id=user.user_id, item_id=item.item_id,
                         ts=round(ts, 3), session_id=session_id, category=CATEGORIES[item.category][0],
                         price=item.price, **extra)

        if kind == "stolen_card_burst":
            pool = [it for it in self.items if CATEGORIES[it.category][0] in EXPENSIVE]
            picks = rng.choice(len(pool), size=int(rng.integers(4, 11)), replace=False)
            for j, index in enumerate(picks.tolist()):
                t += float(rng.uniform(10.0, 60.0))
                yield event("purchase", pool[index], t, order_id=f"o{self.seed}-{user.user_id}-t{j}")
        elif kind == "amount_spike":
            item = self._favourite_item(user, rng)
            yield event("view", item, t)
            yield event("purchase", item, t + float(rng.uniform(20.0, 90.0)),
                        quantity=int(rng.integers(10, 26)), order_id=f"o{self.seed}-{user.user_id}-t")
        elif kind == "account_takeover":
            category = int(np.argmin(user.tastes))
            pool = [it for it in self.items if it.category == category]
            items = [pool[i] for i in rng.choice(len(pool), size=int(rng.integers(2, 4)), replace=False)]
            for item in items:
                yield event("view", item, t)
                t += float(rng.uniform(3.0, 15.0))
            for item in items[: int(rng.integers(1, len(items) + 1))]:
                t += float(rng.uniform(2.0, 10.0))
                yield event("purchase", item, t, order_id=f"o{self.seed}-{user.user_id}-t")
        else:  # device_risk: looks ordinary but for the device
            item = self._favourite_item(user, rng)
            yield event("view", item, t)
            yield event("cart", item, t + float(rng.uniform(10.0, 60.0)))
            yield event("purchase", item, t + float(rng.uniform(90.0, 200.0)),
                        order_id=f"o{self.seed}-{user.user_id}-t",
                        attrs={"device_risk": round(float(rng.beta(12.0, 2.0)), 4)})

    def _favourite_item(self, user: User, rng: np.random.Generator) -> Item:
        category = int(np.argmax(user.tastes))
        return self._pickers[user.type, category].pick(float(rng.random()))

    def label(self, purchase: Event, delay_s: float = DAY_S) -> dict:
        """The confirmed outcome of one purchase, ``delay_s`` after it:
        ``{"event_id", "fraud", "ts", "kind"}`` (``kind`` None when legitimate)."""
        return {"event_id": purchase.event_id, "fraud": purchase.event_id in self.fraud_events,
                "ts": round(purchase.ts + delay_s, 3), "kind": self.fraud_events.get(purchase.event_id)}

    def labels(self, events: Iterable[Event], delay_s: float = DAY_S) -> list[dict]:
        """The outcome of every purchase among ``events``, in time order."""
        out = [self.label(e, delay_s) for e in events if e.type == "purchase"]
        return sorted(out, key=lambda label: label["ts"])


def write_single_topic_events(path: Path, count: int, seed: int = 11) -> int:
    """Synthetic clicks and carts only: they share one input topic, so each
    user's events reach a worker in one partition's order (Kafka orders
    nothing across topics), and a reference run can expect the same state."""
    written = 0
    with open(path, "wb") as f:
        for event in PlantedShop(seed).events(count * 4):
            if event.type in ("click", "cart"):
                f.write(event.to_json() + b"\n")
                written += 1
                if written == count:
                    break
    return written
