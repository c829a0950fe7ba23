"""Session neighbours: the compiled votes are the Python reference's bit for
bit, memory stays bounded, a session is never its own neighbour, erasing a
session leaves no trace, and the votes blend into the co-occurrence ranking."""

from __future__ import annotations

import pickle
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from models.cooccurrence import ItemCooccurrence
from models.session_neighbours import SessionIndex, SessionNeighbours

ITEMS = [f"i{n}" for n in range(25)]


def visit(model: SessionNeighbours, session_id: str, clicks: list[str], ts: float) -> None:
    """Clicks of one session, as a profile hands them over: distinct, latest
    last, at most as many as the profile keeps (its recent items)."""
    items: list[str] = []
    for n, item in enumerate(clicks):
        before = list(items)
        if item in items:
            items.remove(item)
        items.append(item)
        del items[: -model.max_session_items]
        model.learn_one(session_id, items, ts + n, before)


def shop(model: SessionNeighbours, seed: int, sessions: int = 120) -> SessionNeighbours:
    rng = random.Random(seed)
    for s in range(sessions):
        clicks = [rng.choice(ITEMS[: rng.randint(3, 25)]) for _ in range(rng.randint(1, 9))]
        visit(model, f"u{s % 40}#{s // 40 + 1}", clicks, 1000.0 * s)
    return model


def test_the_compiled_votes_are_built() -> None:
    assert SessionIndex is not None, (
        "models/session_votes.pyx is not built: run `bash scripts/bootstrap.sh` (needs a C compiler)"
    )
    assert SessionNeighbours().compiled and not SessionNeighbours(compiled=False).compiled


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 10_000), per_item=st.integers(1, 12), k=st.integers(1, 30),
       horizon=st.integers(1, 6), length_norm=st.sampled_from([0.0, 0.5, 1.0]),
       idf=st.sampled_from([0.0, 3.0]), current=st.lists(st.sampled_from(ITEMS), max_size=8, unique=True),
       own=st.sampled_from([None, "u1#1", "u7#2"]))
def test_the_compiled_votes_are_the_reference(
    seed: int, per_item: int, k: int, horizon: int, length_norm: float, idf: float,
    current: list[str], own: str | None,
) -> None:
    model = shop(SessionNeighbours(sessions_per_item=per_item, neighbours=k, horizon=horizon,
                                   length_norm=length_norm, idf=idf), seed)
    occurrences = {item: 840.0 * (n % 7) for n, item in enumerate(ITEMS)}
    # The current session's ids as separate objects, as events bring them.
    session = [item.encode().decode() for item in current]
    compiled = model.votes(session, own, occurrences)
    reference = model.votes_python(session, own, occurrences)
    assert list(compiled.pairs()) == list(reference.items())
    assert compiled == model.votes(session, own, occurrences)  # no state left between calls


def test_item_lists_keep_the_newest_sessions_and_sessions_a_bounded_number_of_items() -> None:
    model = SessionNeighbours(sessions_per_item=3, max_session_items=4)
    for s in range(6):
        visit(model, f"u{s}#1", ["tent"], float(s))
    assert model.item_sessions["tent"] == {"u3#1": 3.0, "u4#1": 4.0, "u5#1": 5.0}
    # Ties on time: the larger id stays, as a Redis sorted set trimmed by rank keeps.
    model.touch("tent", "u0#9", 5.0)
    assert sorted(model.item_sessions["tent"]) == ["u0#9", "u4#1", "u5#1"]
    # A fifth new item is not learned: the session lists only what item lists know it by.
    visit(model, "v#1", ["a", "b", "c", "d", "e"], 10.0)
    assert model.items("v#1") == ["a", "b", "c", "d"] and "e" not in model.item_sessions
    assert all("v#1" in model.item_sessions[i] for i in "abcd")


def test_a_session_is_not_its_own_neighbour_and_votes_are_shares() -> None:
    model = SessionNeighbours()
    visit(model, "me#1", ["tent", "stove"], 0.0)
    visit(model, "a#1", ["tent", "stove", "mat"], 10.0)
    visit(model, "b#1", ["tent", "lamp"], 20.0)
    assert [s for s, _ in model.similar(["tent", "stove"], own="me#1")] == ["a#1", "b#1"]
    votes = model.votes_python(["tent", "stove"], own="me#1")
    # Both neighbours hold tent; a#1, nearer (it shares both items), votes
    # more for its items, most for what it shares last (stove), then the items
    # one step from it (tent, mat).
    assert set(votes) == {"tent", "stove", "mat", "lamp"}
    assert 1.0 >= votes["tent"] > votes["stove"] > votes["mat"] > votes["lamp"] > 0.0
    assert model.explain(["tent", "stove"], ["mat", "lamp", "chair"], own="me#1") == {
        "mat": (("stove", "tent"), 1), "lamp": (("tent",), 1)}


def test_forget_and_a_copy() -> None:
    model = shop(SessionNeighbours(), seed=3)
    copy = pickle.loads(pickle.dumps(model))
    session = ["i1", "i2", "i3"]
    assert list(copy.votes(session).pairs()) == list(model.votes(session).pairs())
    gone = [s for s in model.sessions if s.startswith("u1#")]
    model.forget(gone)
    assert not any(s.startswith("u1#") for row in model.item_sessions.values() for s in row)
    assert not any(s.startswith("u1#") for s in model.sessions)


def test_votes_blend_into_the_co_occurrence_ranking() -> None:
    cooccurrence, neighbours = ItemCooccurrence(), SessionNeighbours()
    for s, clicks in enumerate([["tent", "stove"], ["tent", "stove"], ["lamp", "mat", "tent", "chair"]]):
        seen: list[str] = []
        for item in clicks:
            cooccurrence.learn_one(seen, item, "view", ts=0.0)
            seen.append(item)
        visit(neighbours, f"u{s}#1", clicks, 0.0)
    session = ["lamp", "mat"]
    plain = dict(zip(*cooccurrence.rank(session, k=10)))
    votes = neighbours.votes(session, occurrences=cooccurrence.occurrences)
    blended, scores = cooccurrence.rank(session, k=10, extra=votes, extra_weight=2.0)
    # Each item's score is its co-occurrence score plus twice its vote.
    assert set(blended) == set(plain) | set(votes)
    for item, score in zip(blended, scores):
        assert abs(score - (plain.get(item, 0.0) + 2.0 * votes.get(item, 0.0))) < 1e-9 * score
    python = ItemCooccurrence(compiled=False)
    python.neighbours, python.occurrences = cooccurrence.neighbours, cooccurrence.occurrences
    assert python.rank(session, k=10, extra=votes, extra_weight=2.0) == (blended, scores)
    # Without co-occurrence rows, the votes alone rank (scaled by the weight).
    assert cooccurrence.rank(["new"], k=2, extra=votes, extra_weight=2.0)[1][0] == 2.0 * max(votes.values())


def in_step(model: SessionNeighbours) -> None:
    """The compiled index holds what the model's dicts hold."""
    index = model._index
    assert index is not None
    for item, row in model.item_sessions.items():
        assert index.listing(item) == row, item
    for session_id, (items, _) in model.sessions.items():
        assert index.items(session_id) == items, session_id


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), per_item=st.integers(1, 6), inline=st.integers(1, 4))
def test_the_index_follows_every_change_of_the_model(seed: int, per_item: int, inline: int) -> None:
    model = shop(SessionNeighbours(sessions_per_item=per_item), seed, sessions=60)
    in_step(model)
    model.forget([s for s in model.sessions if s.startswith("u3#")])
    # A store hands over longer sessions than the model keeps inline, and item lists.
    rng = random.Random(seed)
    store = SessionNeighbours(sessions_per_item=per_item, max_session_items=inline)
    for session_id, (items, _) in model.sessions.items():
        store.load(session_id, list(items))
    for item, row in model.item_sessions.items():
        store.list_sessions(item, dict(row))
    store.list_sessions("i1", {s: 1.0 for s in rng.sample(sorted(model.sessions), 3)})
    model.list_sessions("i1", dict(store.item_sessions["i1"]))
    for twin in (model, store, pickle.loads(pickle.dumps(store))):
        in_step(twin)
        for current in (["i1", "i2"], ["i5", "i9", "i1"], ["nowhere"]):
            assert list(twin.votes(current, "u1#1").pairs()) == list(twin.votes_python(current, "u1#1").items())
    assert list(store.votes(["i3"]).pairs()) == list(model.votes(["i3"]).pairs())
    none = shop(SessionNeighbours(neighbours=0), seed, sessions=20)
    assert not none.votes(["i1", "i2"]) and not none.votes_python(["i1", "i2"])


def test_the_compiled_ranking_reads_the_votes_by_address() -> None:
    """Ranking compiled votes makes no list of their items (the slot stays
    unset), and ranks as with the same votes as a plain row."""
    from models.neighbours import Neighbours, NumberedVotes, _ITEM_IDS

    cooccurrence, model = ItemCooccurrence(), shop(SessionNeighbours(), seed=5)
    for s in range(60):
        seen: list[str] = []
        for item in ITEMS[s % 7: s % 7 + 4]:
            cooccurrence.learn_one(seen, item, "view", ts=float(s))
            seen.append(item)
    votes = model.votes(["i2", "i3"], occurrences=cooccurrence.occurrences)
    assert type(votes) is NumberedVotes
    ranked = cooccurrence.rank(["i2", "i3"], k=15, extra=votes, extra_weight=2.0)
    try:
        _ITEM_IDS.__get__(votes, NumberedVotes)
        made = True
    except AttributeError:
        made = False
    assert not made
    plain = Neighbours.from_pairs(votes.pairs())
    assert cooccurrence.rank(["i2", "i3"], k=15, extra=plain, extra_weight=2.0) == ranked
