"""A seeded synthetic shop: catalogue, users with latent behaviour, event traffic.

Pure computation (numpy random, no I/O): the same seed gives the same
catalogue, users and events, in the same order, every time.

The catalogue has items in categories (``CATEGORIES``); each category has a
base price and items spread log-normally around it, with Zipf popularity.
Each user has a latent behaviour **type** and latent **tastes** (a weight per
category, concentrated on two or three favourites). A session picks a focus
category from the user's tastes and views items mostly from it (else from
another favourite, rarely anywhere), so items of one category co-occur in
sessions. Every view may lead to a click, a click to a cart, and at the end
of the session each carted item may be bought (one ``order_id`` per
checkout; purchases carry ``price``, ``quantity`` and ``order_id``; every
event carries the item's ``price`` and ``category``).

Sessions are separated by gaps drawn from the user's own rhythm (gamma, mean
``rhythm_s``, itself the type's mean gap times a per-user factor); events in
a session are seconds to minutes apart. Users' streams are interleaved in
event-time order.

Behaviour types and their planted signatures (see ``PROFILES``; measured
figures are per session, over a long enough stream):

====================  ===========  =====  ======================  ====================
type                  mean gap     views  purchases (per view)    prices bought
====================  ===========  =====  ======================  ====================
frequent_big_spender  16 h         9      ~2.3 (~0.25), qty 1-2   top 35 % of category
bargain_hunter        14 h         14     ~1.0 (~0.075), qty 1-4  bottom 35 %
window_shopper        20 h         16     ~0.01 (~0.0005)         any
occasional_buyer      5 days       3      ~1.6 (~0.55)            middle 40 %
new_visitor           one session  3      ~0.02 (~0.01)           any
====================  ===========  =====  ======================  ====================

In RFM/funnel terms: big spenders come often, convert well and spend most;
bargain hunters come as often but browse long, cart and buy cheap items in
quantity at a low conversion; window shoppers browse long and almost never
cart or buy; occasional buyers come rarely, browse little and usually buy;
new visitors are seen once, briefly. Big spenders' tastes lean towards
expensive categories, bargain hunters' towards cheap ones. (Offline K-means
on five per-user features - sessions, views per session, purchase and cart
rate per view, mean purchase price - recovers the types with ARI ~0.9 on
``Shop(seed, users=300).events(100_000)``, ~17 days.)

A population of ``users`` produces roughly ``20 * users`` events per day.
Regular users start at a random phase of their rhythm; new visitors arrive
uniformly over the first ``horizon_days``.

>>> shop = Shop(seed=7, users=20)
>>> first = next(shop.events())
>>> first.event_id, first.type, first.user_id
('e7-u00016-1-1', 'view', 'u00016')
>>> [e.to_json() for e in shop.events(500)] == [e.to_json() for e in Shop(seed=7, users=20).events(500)]
True
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import orjson

from stream.config import Topics
from stream.events import Event
from backtest.sources import Message

# A fixed Monday, so that runs are reproducible.
START_TS = datetime(2024, 3, 4, tzinfo=timezone.utc).timestamp()
DEFAULT_USERS = 500

# (name, base price): item prices are log-normal around the base.
CATEGORIES: tuple[tuple[str, float], ...] = (
    ("books", 14.0), ("music", 12.0), ("grocery", 9.0), ("beauty", 22.0),
    ("toys", 25.0), ("garden", 35.0), ("home", 45.0), ("fashion", 40.0),
    ("sports", 50.0), ("shoes", 65.0), ("electronics", 120.0), ("computers", 160.0),
)
ITEMS_PER_CATEGORY = 60


@dataclass(frozen=True)
class Profile:
    """How users of one behaviour type shop."""

    share: float  # of the population
    gap_h: float | None  # mean hours between sessions; None: one session only
    views: float  # mean item views per session
    p_click: float  # P(click | view)
    p_cart: float  # P(cart | click)
    p_buy: float  # P(purchase | cart), at checkout
    price_band: tuple[float, float]  # quantiles of a category's prices the user looks at
    price_tilt: float  # tastes *= (base price) ** tilt: + leans to expensive categories
    max_quantity: int = 1


PROFILES: dict[str, Profile] = {
    "frequent_big_spender": Profile(0.15, 16, 9, 0.6, 0.5, 0.85, (0.65, 1.0), 1.0, 2),
    "bargain_hunter": Profile(0.20, 14, 14, 0.5, 0.25, 0.6, (0.0, 0.35), -1.0, 4),
    "window_shopper": Profile(0.25, 20, 16, 0.3, 0.02, 0.1, (0.0, 1.0), 0.0),
    "occasional_buyer": Profile(0.20, 120, 3, 0.8, 0.7, 0.95, (0.3, 0.7), 0.0),
    "new_visitor": Profile(0.20, None, 3, 0.4, 0.1, 0.2, (0.0, 1.0), 0.0),
}

# Where a session's views come from.
P_FOCUS = 0.75  # the session's focus category
P_TASTES = 0.20  # another draw from the user's tastes; the rest: any category


@dataclass(frozen=True)
class Item:
    item_id: str
    category: int
    price: float
    popularity: float


@dataclass
class User:
    """A user and the latent truth behind their behaviour."""

    index: int
    user_id: str
    type: str
    tastes: np.ndarray  # weight per category, sums to 1
    rhythm_s: float | None  # mean gap between sessions; None: a single session
    first_ts: float  # start of the first session

    def truth(self) -> dict:
        return {
            "user_id": self.user_id,
            "type": self.type,
            "tastes": {CATEGORIES[c][0]: round(float(w), 4) for c, w in enumerate(self.tastes)},
            "rhythm_s": None if self.rhythm_s is None else round(self.rhythm_s, 1),
            "first_ts": round(self.first_ts, 3),
        }


def _draw(cdf: list[float], u: float) -> int:
    """Index drawn from a cumulative distribution by a uniform ``u``."""
    return min(bisect.bisect_right(cdf, u), len(cdf) - 1)


@dataclass(frozen=True)
class _Picker:
    """Items of one category within one price band, as a popularity CDF."""

    items: list[Item]
    cdf: list[float]

    def pick(self, u: float) -> Item:
        return self.items[_draw(self.cdf, u)]


class Shop:
    """A seeded population of users shopping in a seeded catalogue.

    ``users`` defaults to ``DEFAULT_USERS``; ``profiles`` maps behaviour type to
    :class:`Profile` (shares are normalised). Subclasses that plant more truth
    (churners, fraud) extend :class:`User`, ``_population`` and ``_user_events``.
    """

    def __init__(
        self,
        seed: int,
        users: int | None = None,
        start_ts: float = START_TS,
        horizon_days: float = 2.0,
        profiles: dict[str, Profile] = PROFILES,
    ) -> None:
        self.seed = seed
        self.profiles = profiles
        self.start_ts = float(start_ts)
        self.horizon_s = horizon_days * 86400.0
        self.items = self._catalogue(np.random.default_rng([seed, 1]))
        self._pickers = self._build_pickers()
        n = DEFAULT_USERS if users is None else users
        if n < 1:
            raise ValueError("a shop needs at least one user")
        self.users = self._population(np.random.default_rng([seed, 2]), n)

    # -- construction ---------------------------------------------------------

    @staticmethod
    def _catalogue(rng: np.random.Generator) -> list[Item]:
        items = []
        for c, (_, base) in enumerate(CATEGORIES):
            prices = base * rng.lognormal(0.0, 0.6, ITEMS_PER_CATEGORY)
            popularity = 1.0 / np.arange(1, ITEMS_PER_CATEGORY + 1) ** 1.1
            rng.shuffle(popularity)
            for k in range(ITEMS_PER_CATEGORY):
                item_id = f"i{c:02d}{k:03d}"
                items.append(Item(item_id, c, round(float(prices[k]), 2), float(popularity[k])))
        return items

    def _build_pickers(self) -> dict[tuple[str, int], _Picker]:
        pickers = {}
        for c in range(len(CATEGORIES)):
            in_cat = sorted((it for it in self.items if it.category == c), key=lambda it: it.price)
            for name, profile in self.profiles.items():
                lo, hi = profile.price_band
                band = in_cat[int(lo * len(in_cat)) : max(int(hi * len(in_cat)), int(lo * len(in_cat)) + 1)]
                weights = np.array([it.popularity for it in band])
                pickers[name, c] = _Picker(band, (np.cumsum(weights) / weights.sum()).tolist())
        return pickers

    def _population(self, rng: np.random.Generator, n: int) -> list[User]:
        names = list(self.profiles)
        shares = np.array([self.profiles[t].share for t in names])
        # Every type is present whenever there are enough users for it.
        types = names[:n] + list(rng.choice(names, size=max(0, n - len(names)), p=shares / shares.sum()))
        rng.shuffle(types)
        base_prices = np.array([base for _, base in CATEGORIES])
        users = []
        for i, kind in enumerate(types):
            profile = self.profiles[kind]
            tastes = rng.dirichlet(np.full(len(CATEGORIES), 0.3)) * base_prices**profile.price_tilt
            tastes /= tastes.sum()
            if profile.gap_h is None:
                rhythm = None
                first = self.start_ts + rng.uniform(0, self.horizon_s)
            else:
                rhythm = profile.gap_h * 3600.0 * float(rng.lognormal(0.0, 0.35))
                first = self.start_ts + rng.uniform(0, rhythm)
            users.append(User(i, f"u{i:05d}", str(kind), tastes, rhythm, float(first)))
        return users

    # -- traffic --------------------------------------------------------------

    def truth(self) -> list[dict]:
        """One dict per user: ``user_id``, ``type``, ``tastes`` (category -> weight),
        ``rhythm_s`` (mean gap between sessions, None for one-session users) and
        ``first_ts`` (a user whose first_ts lies past the generated stream never appears)."""
        return [user.truth() for user in self.users]

    def events(self, count: int | None = None, until: float | None = None) -> Iterator[Event]:
        """Events of all users in event-time order: the first ``count``, or those
        before ``until`` (epoch seconds), or both. With neither, it never ends.
        Every call starts afresh from the seed."""
        stream: Iterator[Event] = heapq.merge(
            *(self._user_events(user) for user in self.users), key=lambda e: e.ts
        )
        if until is not None:
            stream = itertools.takewhile(lambda e: e.ts < until, stream)
        return itertools.islice(stream, count)

    def _user_events(self, user: User) -> Iterator[Event]:
        rng = np.random.default_rng([self.seed, 3, user.index])
        t = user.first_ts
        for session_no in itertools.count(1):
            t = yield from self._session(rng, user, session_no, t)
            if user.rhythm_s is None:
                return
            t += float(rng.gamma(2.0, user.rhythm_s / 2.0))

    def _session(
        self, rng: np.random.Generator, user: User, session_no: int, t: float
    ) -> Generator[Event, None, float]:
        """Yield one session's events from time ``t``; return the time it ends."""
        profile = self.profiles[user.type]
        n = 1 + int(rng.poisson(profile.views - 1))
        session_id = f"{user.user_id}-s{session_no}"
        tastes_cdf = np.cumsum(user.tastes).tolist()
        focus = _draw(tastes_cdf, rng.random())
        draws = rng.random((n, 6)).tolist()
        dwell = rng.lognormal(math.log(25.0), 0.8, n).tolist()  # seconds on an item
        steps = rng.lognormal(math.log(6.0), 0.6, (n, 2)).tolist()  # view->click->cart
        counter = itertools.count(1)

        def event(kind: str, item: Item, ts: float, **extra) -> Event:
            return Event(
                event_id=f"e{self.seed}-{user.user_id}-{session_no}-{next(counter)}",
                type=kind, user_id=user.user_id, item_id=item.item_id, ts=round(ts, 3),
                session_id=session_id, category=CATEGORIES[item.category][0],
                price=item.price, **extra,
            )

        cart: list[tuple[Item, float]] = []  # with the draw that decides the purchase
        for k in range(n):
            u_source, u_category, u_item, u_click, u_cart, u_buy = draws[k]
            if u_source < P_FOCUS:
                category = focus
            elif u_source < P_FOCUS + P_TASTES:
                category = _draw(tastes_cdf, u_category)
            else:
                category = int(u_category * len(CATEGORIES))
            item = self._pickers[user.type, category].pick(u_item)
            yield event("view", item, t)
            if u_click < profile.p_click:
                t += steps[k][0]
                yield event("click", item, t)
                if u_cart < profile.p_cart:
                    t += steps[k][1]
                    yield event("cart", item, t)
                    cart.append((item, u_buy))
            t += dwell[k]
        bought = [item for item, u_buy in cart if u_buy < profile.p_buy]
        if bought:
            order_id = f"o{self.seed}-{user.user_id}-{session_no}"
            t += float(rng.uniform(20.0, 120.0))
            quantities = rng.integers(1, profile.max_quantity + 1, len(bought)).tolist()
            for item, quantity in zip(bought, quantities):
                t += 1.0
                yield event("purchase", item, t, quantity=quantity, order_id=order_id)
        return t


def messages(
    events: Iterable[Event], topics: Topics, bad_fraction: float = 0.0, seed: int = 0
) -> Iterator[Message]:
    """Events as input-topic messages keyed by user; a seeded ``bad_fraction`` of
    them is replaced by :func:`malformed` ones."""
    rng = np.random.default_rng([seed, 0xBAD])
    for event in events:
        if bad_fraction > 0 and rng.random() < bad_fraction:
            topic, raw, kind = malformed(rng, event, topics)
            yield Message(topic, event.user_id.encode(), raw, kind)
        else:
            yield Message(topics.for_event_type(event.type), event.user_id.encode(), event.to_json())


# -- malformed input ------------------------------------------------------------

MALFORMED_KINDS: tuple[str, ...] = (
    "not_json", "invalid_utf8", "truncated_json", "json_array", "json_null",
    "missing_event_id", "missing_user_id", "missing_item_id", "missing_ts", "missing_type",
    "event_id_number", "user_id_list", "empty_user_id", "control_char_id",
    "ts_string", "ts_zero", "ts_millis", "ts_year_9999",
    "price_string", "negative_price", "purchase_without_price", "nan_price",
    "quantity_zero", "wrong_topic", "unknown_type", "oversize",
)
_GARBAGE = (b"user=u1&item=i2&type=view", b"<event type='view'/>", b"hello", b"{{}}", b"\x00\x01\x02")


def role_of(topic: str, topics: Topics) -> str:
    """The role (``views``, ``clicks``, ``purchases``) of an input topic name."""
    return {topics.views: "views", topics.clicks: "clicks", topics.purchases: "purchases"}[topic]


def malformed(
    rng: np.random.Generator, good: Event, topics: Topics, kind: str | None = None
) -> tuple[str, bytes, str]:
    """One bad message derived from a good event: ``(topic, raw_bytes, kind)``.

    ``kind`` is one of ``MALFORMED_KINDS`` (drawn by ``rng`` when None). Every
    one is rejected by ``stream.events.decode(raw, role_of(topic, topics))``;
    none contains a newline, so they can be written as JSONL lines.
    """
    if kind is None:
        kind = MALFORMED_KINDS[int(rng.integers(len(MALFORMED_KINDS)))]
    d = good.to_dict()
    topic = topics.for_event_type(good.type)
    as_purchase = {**d, "type": "purchase", "price": d.get("price", 9.99)}
    raw: bytes | None = None
    if kind == "not_json":
        raw = _GARBAGE[int(rng.integers(len(_GARBAGE)))]
    elif kind == "invalid_utf8":
        raw = orjson.dumps(d)[:-1] + b',"note":"\xff\xfe"}'  # bytes that are not UTF-8
    elif kind == "truncated_json":
        full = orjson.dumps(d)
        raw = full[: int(rng.integers(1, len(full)))]
    elif kind == "json_array":
        raw = orjson.dumps([d])
    elif kind == "json_null":
        raw = b"null"
    elif kind.startswith("missing_"):
        d.pop(kind.removeprefix("missing_"))
    elif kind == "event_id_number":
        d["event_id"] = int(rng.integers(1, 10**9))
    elif kind == "user_id_list":
        d["user_id"] = [good.user_id]
    elif kind == "empty_user_id":
        d["user_id"] = ""
    elif kind == "control_char_id":
        d["item_id"] = good.item_id + "\n\t"
    elif kind == "ts_string":
        d["ts"] = "yesterday"
    elif kind == "ts_zero":
        d["ts"] = 0
    elif kind == "ts_millis":
        d["ts"] = good.ts * 1000.0
    elif kind == "ts_year_9999":
        d["ts"] = 253402300799.0
    elif kind == "price_string":
        d["price"] = f"{d.get('price', 9.99):.2f}"
    elif kind == "negative_price":
        d["price"] = -abs(d.get("price", 9.99)) - 0.01
    elif kind == "purchase_without_price":
        d = {**as_purchase}
        d.pop("price")
        topic = topics.purchases
    elif kind == "nan_price":
        d.pop("price", None)
        raw = orjson.dumps(d)[:-1] + b',"price":NaN}'
    elif kind == "quantity_zero":
        d["quantity"] = 0
    elif kind == "wrong_topic":
        d, topic = as_purchase, topics.views
    elif kind == "unknown_type":
        d["type"] = "wishlist"
    elif kind == "oversize":
        d["note"] = "x" * 70_000
    else:
        raise ValueError(f"unknown malformed kind {kind!r}")
    return topic, orjson.dumps(d) if raw is None else raw, kind
