"""A card-transaction scenario: every buyer seen once, fraud visible only in ``attrs``.

Public card-transaction data sets look nothing like the planted shop: each
card makes one purchase in the data (no history to be unusual against), the
signal lies in a few dozen anonymised numeric fields and the amount, and
fraud is a fraction of a percent. ``CardShop`` plants that:

* ``count`` purchases spread over ``hours`` hours (48 by default) with a daily
  rhythm (busier by day), each by a card of its own (``user_id``), at one of
  ``MERCHANTS`` merchants (``item_id``, Zipf popularity), with a log-normal
  amount (``price``), an ``order_id`` and ``attrs`` ``v1`` .. ``v<attrs>``;
* legitimate ``attrs`` are heavy-tailed (Student's t, 5 degrees of freedom)
  with spreads falling from ``v1`` to the last, as principal components do:
  plenty of legitimate purchases look odd to an anomaly detector;
* exactly ``round(fraud_share * count)`` purchases (0.2 % by default) are
  fraud. Each is pushed along one direction of the few informative fields
  (``INFORMATIVE``: 8 of the 28) by a magnitude of its own, and spreads twice
  as wide as legitimate traffic in every field; the other fields carry
  nothing. A ``faint_share`` (10 %) of them are pushed only a little and hide
  among ordinary purchases; fraud amounts lean small (card testing) with a
  long tail.

The scales were set, on seeds 42, 7 and 1 (100k purchases), to give what
issue 21 reports of a public card data set: the best single field ranks
frauds at average precision .49-.57 (public: .59) and river's
HalfSpaceTrees (``MinMaxScaler`` in front, on ``attrs`` and log amount) at
ROC AUC .91-.92, AP .08-.10 (public: .92 / .08), while a logistic regression
fitted offline reaches .966-.979 / .88-.90 (five-fold cross-validation);
``scripts/cards_difficulty.py`` prints these.

``label`` / ``labels`` give outcomes as :class:`shop.planted.PlantedShop`
does (``kind`` ``card_fraud`` or None); ``fraud_events`` maps each fraud
purchase's id to its kind. The same seed and count give the same events.

>>> shop = CardShop(seed=3)
>>> events = list(shop.events(5000))
>>> len(events), len({e.user_id for e in events}), {e.type for e in events}
(5000, 5000, {'purchase'})
>>> len(shop.fraud_events), sorted(events[0].attrs)[:3]
(10, ['v1', 'v10', 'v11'])
>>> [e.to_json() for e in events[:50]] == [e.to_json() for e in CardShop(seed=3).events(5000)][:50]
True
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from shop.synthetic import START_TS
from stream.events import Event

HOUR_S = 3600.0
MERCHANTS = 400
# Field -> its direction and weight in a fraud's push (the rest carry nothing).
INFORMATIVE: dict[str, float] = {"v14": -1.0, "v17": -0.9, "v12": -0.8, "v10": -0.7,
                                 "v3": -0.6, "v4": 0.6, "v11": 0.5, "v16": -0.5}
FRAUD_KIND = "card_fraud"


class CardShop:
    def __init__(
        self,
        seed: int,
        fraud_share: float = 0.002,
        hours: float = 48.0,
        attrs: int = 28,
        faint_share: float = 0.1,
        start_ts: float = START_TS,
    ) -> None:
        if not 0.0 <= fraud_share <= 1.0 or not 0.0 <= faint_share <= 1.0:
            raise ValueError("fraud_share and faint_share must be between 0 and 1")
        if hours <= 0.0:
            raise ValueError("hours must be > 0")
        if not max(int(name[1:]) for name in INFORMATIVE) <= attrs <= 64:
            raise ValueError("attrs must be between 17 and 64 (the informative fields and the contract's limit)")
        self.seed, self.fraud_share, self.hours = seed, fraud_share, hours
        self.attrs, self.faint_share, self.start_ts = attrs, faint_share, float(start_ts)
        self.fraud_events: dict[str, str] = {}

    def truth(self) -> list[dict]:
        """No users' truth: each card is seen once; fraud is in the outcomes."""
        return []

    def _times(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Sorted purchase times: busier by day than by night (thinned Poisson)."""
        out: list[np.ndarray] = []
        have = 0
        while have < count:
            t = rng.uniform(0.0, self.hours * HOUR_S, 2 * count)
            # The stream starts at 08:00; busiest at 14:00, quietest at 02:00.
            day = 0.5 - 0.5 * np.cos(2.0 * np.pi * (t / 86400.0 + 0.25))
            keep = t[rng.random(t.size) < 0.35 + 0.65 * day]
            out.append(keep)
            have += keep.size
        return np.sort(np.concatenate(out)[:count])

    def events(self, count: int = 100_000) -> Iterator[Event]:
        """``count`` purchases in time order (every call starts afresh from the seed)."""
        rng = np.random.default_rng([self.seed, 21])
        times = self._times(rng, count)
        n_attrs = self.attrs
        scales = np.linspace(1.9, 0.35, n_attrs)
        x = rng.standard_t(5.0, (count, n_attrs)) / np.sqrt(5.0 / 3.0) * scales
        amount = rng.lognormal(3.2, 1.3, count)
        frauds = np.sort(rng.choice(count, size=int(round(self.fraud_share * count)), replace=False))
        direction = np.zeros(n_attrs)
        for name, weight in INFORMATIVE.items():
            direction[int(name[1:]) - 1] = weight
        for index in frauds.tolist():
            faint = rng.random() < self.faint_share
            magnitude = rng.gamma(2.0, 0.8) if faint else rng.gamma(4.0, 1.5)
            # Fraud spreads wider than legitimate traffic, and the push varies by field.
            push = direction * magnitude * rng.lognormal(0.0, 0.35, n_attrs)
            x[index] = 2.0 * x[index] + push * scales
            amount[index] = rng.lognormal(1.5, 0.6) if rng.random() < 0.5 else rng.lognormal(4.5, 1.2)
        weights = 1.0 / np.arange(1, MERCHANTS + 1) ** 1.05
        merchants = rng.choice(MERCHANTS, size=count, p=weights / weights.sum())
        fraud_set = set(frauds.tolist())
        names = [f"v{k}" for k in range(1, n_attrs + 1)]
        for index in range(count):
            event_id = f"c{self.seed}-{index}"
            if index in fraud_set:
                self.fraud_events[event_id] = FRAUD_KIND
            yield Event(
                event_id=event_id, type="purchase", user_id=f"card{self.seed}-{index}",
                item_id=f"m{int(merchants[index]):03d}", ts=round(self.start_ts + float(times[index]), 3),
                price=round(float(amount[index]), 2), order_id=f"o{self.seed}-{index}",
                attrs={n: round(float(v), 4) for n, v in zip(names, x[index].tolist())},
            )

    def label(self, purchase: Event, delay_s: float = 6 * HOUR_S) -> dict:
        """The confirmed outcome of one purchase, ``delay_s`` after it."""
        return {"event_id": purchase.event_id, "fraud": purchase.event_id in self.fraud_events,
                "ts": round(purchase.ts + delay_s, 3), "kind": self.fraud_events.get(purchase.event_id)}

    def labels(self, events: Iterable[Event], delay_s: float = 6 * HOUR_S) -> list[dict]:
        """The outcome of every purchase among ``events``, in time order."""
        out = [self.label(e, delay_s) for e in events if e.type == "purchase"]
        return sorted(out, key=lambda label: label["ts"])
