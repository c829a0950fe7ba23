"""models.cooccurrence: counts, direction, exactness, bounds, exclusions, cold start."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from models.cooccurrence import UNIT, ItemCooccurrence
from models.neighbours import Neighbours
from models.popularity import Popularity
from models.profile import UserProfile


def learn_session(model: ItemCooccurrence, items: list[str], event_type: str = "view") -> None:
    seen: list[str] = []
    for item in items:
        model.learn_one(seen, item, event_type, ts=0.0)
        if item in seen:
            seen.remove(item)
        seen.append(item)


def test_forward_weight_falls_with_distance_and_backward_is_weaker() -> None:
    model = ItemCooccurrence(backward=0.5)
    learn_session(model, ["a", "b", "c"])
    nb = model.neighbours
    assert nb["a"]["b"] == UNIT  # distance 1
    assert nb["a"]["c"] == UNIT / 2  # distance 2
    assert nb["b"]["c"] == UNIT
    assert nb["c"]["b"] == UNIT * 0.5  # backward
    assert nb["c"]["a"] == UNIT * 0.5 / 2
    assert model.occurrences == {"a": UNIT, "b": UNIT, "c": UNIT}


def test_purchase_counts_more_than_view() -> None:
    model = ItemCooccurrence()
    model.learn_one(["a"], "b", "view", 0.0)
    model.learn_one(["a"], "c", "purchase", 0.0)
    assert model.neighbours["a"]["c"] == 5 * model.neighbours["a"]["b"]
    assert [r.item_id for r in model.recommend(["a"], k=2)] == ["c", "b"]


def test_returning_to_an_item_is_learned_as_a_self_pair() -> None:
    model = ItemCooccurrence(repeat=3.0)
    learn_session(model, ["a", "b", "a"])
    assert model.neighbours["a"]["a"] == 3 * UNIT / 2  # "a" was two items back


def test_window_bounds_the_pairs() -> None:
    model = ItemCooccurrence(window=2)
    pairs, _ = model.increments(["a", "b", "c", "d"], "e", "view", 0.0)
    assert {source for source, target, _ in pairs if target == "e"} == {"c", "d"}


def test_trim_keeps_the_best_neighbours_with_redis_tie_order() -> None:
    model = ItemCooccurrence(max_neighbours=2)
    model.neighbours["a"] = Neighbours.from_pairs({"x": 5.0, "y": 1.0, "z": 1.0, "w": 9.0}.items())
    model.trim(["a"])
    # Redis removes the lowest ranks first, ties in lexical order: "y" < "z".
    assert model.neighbours["a"] == {"w": 9.0, "x": 5.0}
    model.neighbours["b"] = Neighbours.from_pairs({"y": 1.0, "z": 1.0, "x": 1.0}.items())
    model.trim(["b"])
    assert model.neighbours["b"] == {"z": 1.0, "y": 1.0}


def test_purchased_items_are_excluded_and_fallback_fills_cold_start() -> None:
    model = ItemCooccurrence()
    learn_session(model, ["a", "b", "c"])
    recs = model.recommend(["a"], k=3, exclude={"b"}, fallback=["b", "p1", "p2"])
    ids = [r.item_id for r in recs]
    assert "b" not in ids
    assert ids[0] == "c" and recs[0].because == ("a",)
    assert ids[1:] == ["p1", "p2"] and recs[1].because == () and recs[1].score == 0.0
    cold = model.recommend([], k=2, fallback=lambda n: ["p1", "p2", "p3"][:n])
    assert [r.item_id for r in cold] == ["p1", "p2"]


def test_ties_are_broken_by_popularity_then_id() -> None:
    model = ItemCooccurrence()
    model.neighbours["a"] = Neighbours.from_pairs({"x": 1.0, "y": 1.0, "z": 1.0}.items())
    recs = model.recommend(["a"], k=3, popularity={"z": 5.0, "y": 1.0})
    assert [r.item_id for r in recs] == ["z", "y", "x"]


@settings(max_examples=60, deadline=None)
@given(
    sessions=st.lists(
        st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=12), min_size=1, max_size=20
    ),
    seed=st.integers(0, 10_000),
)
def test_weights_are_exact_in_any_order_and_grouping(sessions: list[list[str]], seed: int) -> None:
    """What two workers or a resumed run rely on: the sum of increments does
    not depend on the order they are applied in."""
    model = ItemCooccurrence()
    increments = []
    for items in sessions:
        seen: list[str] = []
        for item in items:
            pairs, occ = model.increments(seen, item, "click", 0.0)
            increments.append((pairs, item, occ))
            if item in seen:
                seen.remove(item)
            seen.append(item)
    forward, shuffled = ItemCooccurrence(), ItemCooccurrence()
    for pairs, item, occ in increments:
        forward.apply(pairs, item, occ)
    order = increments[:]
    random.Random(seed).shuffle(order)
    for pairs, item, occ in order:
        shuffled.apply(list(reversed(pairs)), item, occ)
    assert forward.neighbours == shuffled.neighbours
    assert forward.occurrences == shuffled.occurrences
    assert all(w == int(w) for row in forward.neighbours.values() for w in row.values())


@settings(max_examples=60, deadline=None)
@given(items=st.lists(st.integers(0, 50).map(str), min_size=1, max_size=200))
def test_memory_stays_bounded(items: list[str]) -> None:
    model = ItemCooccurrence(max_neighbours=5)
    profile = UserProfile("u", max_recent=7)
    for i, item in enumerate(items):
        model.learn_one(profile.session_items(), item, "view", float(i))
        profile.learn_one("view", item, float(i), session_id="s")
        model.trim(model.neighbours)
        assert len(profile.recent) <= 7
        assert all(len(row) <= 5 for row in model.neighbours.values())
    recs = model.recommend(profile.recent, k=10)
    assert len({r.item_id for r in recs}) == len(recs) <= 10
    assert all(r.score > 0 for r in recs)


def test_popularity_top_list_is_exact() -> None:
    rng = random.Random(1)
    pop = Popularity(keep=5, half_life_s=None)
    for _ in range(2000):
        pop.learn_one(str(rng.randint(0, 30)), ts=0.0)
    expected = sorted(pop.scores, key=lambda i: (-pop.scores[i], i))[:5]
    assert pop.top(5) == expected
