"""User segments: online K-means over a few scaled behaviour features.

``UserSegments`` takes the feature dicts of ``UserFeatures.values`` and keeps
``k`` centroids over the ``SEGMENT_FEATURES`` subset: how often the user
comes back, how long they browse, how much of what they view they cart and
buy, the price of what they look at and what an order is worth. Counts and
money are taken as ``log1p``, ratios as they are, and every dimension is
divided by its standard deviation over the remembered users, so no feature
dominates because of its unit.

How it learns. Each ``learn_one`` moves the nearest centroid towards the
point by ``max(1 / n, min_rate)`` (sequential k-means) and remembers the
point as the latest one of its ``key`` (a user id) if the key is in a bounded
uniform sample of keys: the ``memory`` keys of smallest hash seen so far
(bottom-k sampling: the same keys whatever the order). Every ``refit_every``
points, the model refits on that sample: Lloyd passes from the current
centroids, and ``restarts`` seeded k-means++ fits, kept only if they lower
the inertia by more than ``restart_gain`` and then matched to the old
centroids so that segment numbers keep their meaning. The refit also sets
the scale, which then holds until the next refit. With ``refit_every=0``
only explicit ``refit()`` calls refit (e.g. before each snapshot); a refit
takes ~3 ms per 500 sampled users.

No degenerate segments. K-means happily spends a centroid on a handful of
outliers (a stolen-card burst buys 8 items per view) and lets two planted
types share another. So every fit, the current one and each restart alike,
is checked: a segment nearest to fewer than ``min_share`` of the sampled
users is re-seeded by splitting the widest segment (largest sum of squared
distances) at the median of its main axis, and Lloyd passes settle the rest;
only then are fits compared. This happens at the periodic refit, online:
the other segments keep their numbers, and the re-seeded one takes its new
meaning from the next snapshot on. The floor (2 %) is far below any planted
type's share yet above a handful of outliers: early in a stream a real type
can still be rare (occasional buyers come back after days), and a 5 % floor
broke one up on seed 5 at 20k events. Names are distinct: segments that
would share one (two kinds of "occasional buyers") are told apart by the
feature on which they differ most ("occasional buyers, bigger orders").

Why not sequential updates alone (river's ``cluster.KMeans``, or this
without the sample): a user's features move as their history grows, so
centroids placed on early points stay in poor local optima. On the
synthetic shop (issue 4 tuning) they reached 1.2-3.6x the inertia of
scikit-learn's offline K-means on the users' final features; with the
refits, 1.02-1.03x.

Deterministic: the state depends only on the sequence of ``learn_one``
calls and the seed, so one learner trains, every worker scores with a
pickled copy, and all of them agree.

>>> seg = UserSegments(k=2, init_size=4, refit_every=4, seed=1)
>>> light = {"sessions_per_week": 0.0, "events_per_session": 3.0, "mean_price": 20.0}
>>> heavy = {"sessions_per_week": 7.0, "events_per_session": 30.0, "purchases_per_view": 0.3,
...          "carts_per_view": 0.4, "mean_price": 150.0, "mean_order_value": 300.0}
>>> seg.predict_one(light) is None  # no segments before init_size points
True
>>> for i, x in enumerate([light, heavy, light, heavy]):
...     seg.learn_one(x, key=f"u{i}")
>>> a, b = seg.predict_one(light), seg.predict_one(heavy)
>>> a != b, seg.assign(light, current=b) == a  # real movement switches
(True, True)
>>> seg.sizes
[2, 2]
>>> seg.profiles()[b]["description"].split(", ")[:3]
['frequent big spenders: 7.0 return visits/week', '30 events/session', 'buys 30% of views']
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# (feature of UserFeatures.values, transform): "log" is log1p, "id" as is.
SEGMENT_FEATURES: tuple[tuple[str, str], ...] = (
    ("sessions_per_week", "log"),
    ("events_per_session", "log"),
    ("purchases_per_view", "id"),
    ("carts_per_view", "id"),
    ("mean_price", "log"),
    ("mean_order_value", "log"),
)


@dataclass
class UserSegments:
    """Online K-means with hysteresis and shop-language profiles of its centroids.

    ``predict_one`` gives the nearest centroid, None until ``init_size`` keys
    are sampled (the first fit). ``assign`` keeps a user's ``current``
    segment unless another centroid is closer by more than ``margin`` of the
    distance to the current one. No segment holds under ``min_share`` of the
    sampled users after a refit (unless the points allow no split), and
    ``profiles`` names are distinct. ``sizes`` counts the sampled users nearest
    each centroid; ``profiles`` describes the centroids.
    """

    k: int = 5
    seed: int = 0
    margin: float = 0.15
    init_size: int = 100
    memory: int = 5000
    refit_every: int = 250
    restarts: int = 4
    restart_gain: float = 0.02
    lloyd_passes: int = 20
    min_rate: float = 0.02
    # Smallest share of the sampled users a segment may hold at a refit.
    min_share: float = 0.02
    features: tuple[tuple[str, str], ...] = SEGMENT_FEATURES
    centroids: list[list[float]] = field(default_factory=list)
    absorbed: list[int] = field(default_factory=list)
    # Mean and 1/std of the sampled points at the last refit.
    center: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    # key -> its latest point, for the `memory` keys of smallest _key_hash.
    sample: dict[str, list[float]] = field(default_factory=dict)
    learnt: int = 0
    refits: int = 0
    # Max-heap (negated) of the sampled keys' ranks: the next to evict on top.
    _ranks: list[tuple[int, str]] = field(default_factory=list, init=False, repr=False)

    # -- geometry -------------------------------------------------------------

    def transform(self, x: dict[str, float]) -> list[float]:
        """The segment dimensions of a feature dict (missing features are 0)."""
        out = []
        for name, kind in self.features:
            v = float(x.get(name, 0.0))
            out.append(math.log1p(max(v, 0.0)) if kind == "log" else v)
        return out

    def inverse(self, z: list[float]) -> dict[str, float]:
        """From segment dimensions back to feature units."""
        return {name: math.expm1(v) if kind == "log" else v for (name, kind), v in zip(self.features, z)}

    def _sq(self, z: list[float], c: list[float]) -> float:
        return sum(((a - b) * s) ** 2 for a, b, s in zip(z, c, self.scale))

    def _nearest(self, z: list[float]) -> tuple[int, float]:
        best, best_d = 0, math.inf
        for i, c in enumerate(self.centroids):
            d = self._sq(z, c)
            if d < best_d:
                best, best_d = i, d
        return best, best_d

    # -- learning -------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return bool(self.centroids)

    def learn_one(self, x: dict[str, float], key: str | None = None) -> None:
        """Learn from one user's features; with ``key`` (the user id) the sample
        keeps only the user's latest point (without, each point is its own key)."""
        z = self.transform(x)
        self.learnt += 1
        self._remember(f"#{self.learnt}" if key is None else key, z)
        if not self.centroids:
            if len(self.sample) >= max(self.init_size, self.k):
                self.refit()
            return
        c, _ = self._nearest(z)
        self.absorbed[c] += 1
        rate = max(1.0 / self.absorbed[c], self.min_rate)
        centroid = self.centroids[c]
        for i, v in enumerate(z):
            centroid[i] += rate * (v - centroid[i])
        if self.refit_every and self.learnt % self.refit_every == 0:
            self.refit()

    def _remember(self, key: str, z: list[float]) -> None:
        if key in self.sample:
            self.sample[key] = z
            return
        rank = _key_hash(key)
        if len(self.sample) < self.memory:
            self.sample[key] = z
            heapq.heappush(self._ranks, (-rank[0], key))
            return
        if len(self._ranks) < len(self.sample):  # e.g. a model made before the heap
            self._ranks = [(-_key_hash(k)[0], k) for k in self.sample]
            heapq.heapify(self._ranks)
        while self._ranks[0][1] not in self.sample:  # forgotten keys leave stale entries
            heapq.heappop(self._ranks)
        largest = (-self._ranks[0][0], self._ranks[0][1])
        if rank < largest:
            heapq.heappop(self._ranks)
            del self.sample[largest[1]]
            self.sample[key] = z
            heapq.heappush(self._ranks, (-rank[0], key))

    def forget(self, key: str) -> None:
        """Drop a user's sampled point (erasure); the centroids keep no per-user data."""
        self.sample.pop(key, None)

    def refit(self) -> None:
        """Refit the centroids on the sampled points (see the module notes)."""
        if len(self.sample) < self.k:
            return
        points = np.array(list(self.sample.values()), dtype=float)
        std = points.std(axis=0)
        scale = np.where(std > 1e-9, 1.0 / np.where(std > 1e-9, std, 1.0), 1.0)
        self.center, self.scale = points.mean(axis=0).tolist(), scale.tolist()
        zs = points * scale
        rng = np.random.default_rng([self.seed, self.refits])
        self.refits += 1
        best, best_inertia = None, math.inf
        if self.centroids:
            best, best_inertia = self._fit(zs, np.array(self.centroids) * scale)
        for _ in range(self.restarts if self.centroids else max(self.restarts, 1)):
            fit, inertia = self._fit(zs, _kmeanspp(zs, self.k, rng))
            if best is None or inertia < (1.0 - self.restart_gain) * best_inertia:
                if best is not None and self.centroids:
                    fit = _match(fit, np.array(self.centroids) * scale)
                best, best_inertia = fit, inertia
        self.centroids = (best / scale).tolist()
        labels = _labels(zs, best)
        counts = np.bincount(labels, minlength=self.k).tolist()
        self.absorbed = [max(a, n) for a, n in zip(self.absorbed or [0] * self.k, counts)]

    def _fit(self, zs: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, float]:
        """Lloyd passes from ``centroids``, re-seeding segments under ``min_share``."""
        fit, inertia = _lloyd(zs, centroids, self.lloyd_passes)
        for _ in range(self.k):  # each split can leave another segment small
            split = _split_widest(zs, fit, self.min_share)
            if split is None:
                break
            fit, inertia = _lloyd(zs, split, self.lloyd_passes)
        return fit, inertia

    # -- scoring --------------------------------------------------------------

    def distances(self, x: dict[str, float]) -> list[float]:
        """Scaled Euclidean distance from ``x`` to each centroid."""
        z = self.transform(x)
        return [math.sqrt(self._sq(z, c)) for c in self.centroids]

    def predict_one(self, x: dict[str, float]) -> int | None:
        """The nearest centroid (None before the first fit)."""
        if not self.centroids:
            return None
        return self._nearest(self.transform(x))[0]

    def assign(self, x: dict[str, float], current: int | None) -> int | None:
        """The user's segment given their ``current`` one, with hysteresis."""
        if not self.centroids:
            return current
        d = self.distances(x)
        nearest = min(range(len(d)), key=d.__getitem__)
        if current is None or not 0 <= current < len(d):
            return nearest
        return nearest if d[nearest] < (1.0 - self.margin) * d[current] else current

    def inertia(self, xs: list[dict[str, float]]) -> float:
        """Sum of squared scaled distances of ``xs`` to their nearest centroid."""
        return sum(self._nearest(self.transform(x))[1] for x in xs)

    @property
    def sizes(self) -> list[int]:
        """Sampled users (see ``memory``) nearest each centroid."""
        if not self.centroids:
            return []
        scale = np.array(self.scale)
        labels = _labels(np.array(list(self.sample.values())) * scale, np.array(self.centroids) * scale)
        return np.bincount(labels, minlength=self.k).tolist()

    # -- description ----------------------------------------------------------

    def profiles(self) -> list[dict[str, Any]]:
        """Each centroid in shop terms: ``segment``, ``name``, ``description``,
        ``size`` and ``share`` of the sampled users, ``centroid`` (feature units)."""
        sizes = self.sizes
        total = max(sum(sizes), 1)
        raws = [self.inverse(z) for z in self.centroids]
        # Where each centroid sits in the population, in standard deviations.
        rels = [{name: (v - m) * s for (name, _), v, m, s in zip(self.features, z, self.center, self.scale)}
                for z in self.centroids]
        names = _distinct([_name(raw, rel) for raw, rel in zip(raws, rels)], rels)
        out = []
        for c, (raw, name) in enumerate(zip(raws, names)):
            out.append({
                "segment": c,
                "name": name,
                "description": f"{name}: {_describe(raw)}",
                "size": sizes[c],
                "share": round(sizes[c] / total, 4),
                "centroid": {f: round(v, 4) for f, v in raw.items()},
            })
        return out


def _key_hash(key: str) -> tuple[int, str]:
    """A stable pseudo-random rank of a key (``hash()`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big"), key


def _sq_dists(zs: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Squared distances, points x centroids."""
    d = (zs * zs).sum(axis=1)[:, None] - 2.0 * zs @ centroids.T + (centroids * centroids).sum(axis=1)[None, :]
    return np.maximum(d, 0.0)


def _labels(zs: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    return _sq_dists(zs, centroids).argmin(axis=1)


def _lloyd(zs: np.ndarray, centroids: np.ndarray, passes: int) -> tuple[np.ndarray, float]:
    """Lloyd iterations until labels settle (an empty cluster keeps its centroid);
    returns (centroids, inertia)."""
    centroids = centroids.copy()
    k = len(centroids)
    labels = None
    for _ in range(passes):
        new_labels = _labels(zs, centroids)
        if labels is not None and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        counts = np.bincount(labels, minlength=k)
        for j in range(zs.shape[1]):
            sums = np.bincount(labels, weights=zs[:, j], minlength=k)
            centroids[:, j] = np.where(counts > 0, sums / np.maximum(counts, 1), centroids[:, j])
    return centroids, float(_sq_dists(zs, centroids).min(axis=1).sum())


def _kmeanspp(zs: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centroids = [zs[rng.integers(len(zs))]]
    for _ in range(1, k):
        d2 = _sq_dists(zs, np.array(centroids)).min(axis=1)
        total = d2.sum()
        i = rng.integers(len(zs)) if total <= 0 else int(np.searchsorted(d2.cumsum(), rng.random() * total))
        centroids.append(zs[min(i, len(zs) - 1)])
    return np.array(centroids)


def _split_widest(zs: np.ndarray, centroids: np.ndarray, min_share: float) -> np.ndarray | None:
    """``centroids`` with the smallest segment moved to split the widest, if the
    smallest holds under ``min_share`` of ``zs``; None if none does (or no split).

    The widest segment's points are cut at the median of their projection on
    its main axis, and each half's mean becomes a centroid: unlike a split at
    the farthest point, a lone outlier cannot take a centroid again.

    >>> zs = np.array([[0.0, 0], [0, 1], [10, 0], [10, 1], [50, 50]])
    >>> _split_widest(zs, np.array([[5.0, 0.5], [50, 50]]), 0.25).tolist()
    [[0.0, 0.5], [10.0, 0.5]]
    """
    k = len(centroids)
    labels = _labels(zs, centroids)
    counts = np.bincount(labels, minlength=k)
    small = int(counts.argmin())
    if counts[small] >= min_share * len(zs):
        return None
    spread = np.bincount(labels, weights=((zs - centroids[labels]) ** 2).sum(axis=1), minlength=k)
    spread[small] = -1.0
    wide = int(spread.argmax())
    members = zs[labels == wide]
    centred = members - members.mean(axis=0)
    if len(members) < 2 or not centred.any():
        return None
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    axis *= np.sign(axis[np.abs(axis).argmax()])  # an axis' sign is arbitrary: fix it
    side = centred @ axis > np.median(centred @ axis)
    if side.all() or not side.any():
        return None
    out = centroids.copy()
    out[wide], out[small] = members[~side].mean(axis=0), members[side].mean(axis=0)
    return out


def _match(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """``new`` reordered so that centroid i lies as close as possible to old i."""
    k = len(old)
    cost = ((new[:, None, :] - old[None, :, :]) ** 2).sum(axis=2)
    if k <= 8:
        order = min(itertools.permutations(range(k)), key=lambda p: sum(cost[p[i], i] for i in range(k)))
    else:  # greedy beyond 8! permutations
        order, free = [], set(range(k))
        for i in range(k):
            j = min(free, key=lambda j: cost[j, i])
            order.append(j)
            free.remove(j)
    return new[list(order)]


def _name(raw: dict[str, float], rel: dict[str, float]) -> str:
    """A short marketing label: where the centroid sits in the population
    (``rel``, in standard deviations) and a few absolute thresholds."""
    rare = raw.get("sessions_per_week", 0.0) < 1.5 or rel.get("sessions_per_week", 0.0) < -0.5
    frequent = not rare and rel.get("sessions_per_week", 0.0) > 0.25
    long_visits = rel.get("events_per_session", 0.0) > 0.0
    if raw.get("purchases_per_view", 0.0) < 0.02 or rel.get("mean_order_value", 0.0) < -0.5:
        if rare:
            return "one-off browsers" if long_visits else "new or one-off visitors"
        return "window shoppers" if long_visits else "browsers"
    if rare:
        return "occasional buyers"
    if rel.get("mean_price", 0.0) < -0.5:
        return "bargain hunters"
    if rel.get("mean_price", 0.0) > 0.5:
        return "frequent big spenders" if frequent else "big spenders"
    return "frequent buyers" if frequent else "regular buyers"


# feature -> how a segment that is higher / lower on it than its namesakes differs.
QUALIFIERS: dict[str, tuple[str, str]] = {
    "sessions_per_week": ("more frequent", "less frequent"),
    "events_per_session": ("longer visits", "shorter visits"),
    "purchases_per_view": ("buy more of what they view", "buy less of what they view"),
    "carts_per_view": ("cart more", "cart less"),
    "mean_price": ("pricier items", "cheaper items"),
    "mean_order_value": ("bigger orders", "smaller orders"),
}


def _distinct(names: list[str], rels: list[dict[str, float]]) -> list[str]:
    """``names`` made distinct: segments sharing one are qualified by the feature
    on which they differ most (``rels``: their positions in standard deviations).

    >>> rels = [{"mean_price": 0.1, "mean_order_value": 2.0}, {"mean_price": 0.0, "mean_order_value": -1.0},
    ...         {"mean_price": 1.0, "mean_order_value": 0.0}]
    >>> _distinct(["occasional buyers", "occasional buyers", "big spenders"], rels)
    ['occasional buyers, bigger orders', 'occasional buyers, smaller orders', 'big spenders']
    """
    out = list(names)
    for name in dict.fromkeys(names):
        _qualify(out, [i for i, n in enumerate(names) if n == name], rels, ())
    return out


def _qualify(out: list[str], group: list[int], rels: list[dict[str, float]], used: tuple[str, ...]) -> None:
    """Qualify the highest and lowest of ``group`` on its most spread feature,
    then the ones between them on the next."""
    if len(group) < 2:
        return
    free = [f for f in QUALIFIERS if f not in used and all(f in rels[i] for i in group)]
    if not free:  # more namesakes than features: numbered
        for rank, i in enumerate(group[1:], 2):
            out[i] += f" ({rank})"
        return
    feature = max(free, key=lambda f: max(rels[i][f] for i in group) - min(rels[i][f] for i in group))
    ranked = sorted(group, key=lambda i: rels[i][feature])
    high, low = QUALIFIERS[feature]
    out[ranked[-1]] += f", {high}"
    out[ranked[0]] += f", {low}"
    _qualify(out, ranked[1:-1], rels, used + (feature,))


def _describe(raw: dict[str, float]) -> str:
    parts = []
    if "sessions_per_week" in raw:
        parts.append(f"{raw['sessions_per_week']:.1f} return visits/week")
    if "events_per_session" in raw:
        parts.append(f"{raw['events_per_session']:.0f} events/session")
    if "purchases_per_view" in raw:
        parts.append(f"buys {raw['purchases_per_view']:.0%} of views")
    if "carts_per_view" in raw:
        parts.append(f"carts {raw['carts_per_view']:.0%} of views")
    if "mean_price" in raw:
        parts.append(f"item price {raw['mean_price']:.0f}")
    if "mean_order_value" in raw:
        parts.append(f"mean order {raw['mean_order_value']:.0f}")
    return ", ".join(parts)
