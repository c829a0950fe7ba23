"""The compiled ranking (models/cooccurrence_rank.pyx) gives the Python
reference's results bit for bit: same items, same order, same scores."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from models.cooccurrence import COMPILED, ItemCooccurrence, rank_votes
from models.neighbours import Neighbours

ITEMS = [f"i{n}" for n in range(30)]
items = st.sampled_from(ITEMS)
# Few distinct weights, so that ties (settled by popularity, then id) are common.
rows = st.lists(
    st.tuples(st.dictionaries(items, st.integers(1, 6).map(lambda n: n * 840.0), min_size=1, max_size=25),
              st.floats(0.01, 1.0)),
    max_size=4,
)
popularity = st.dictionaries(items, st.one_of(st.none(), st.integers(0, 3), st.floats(0.0, 3.0)), max_size=30)


def test_the_compiled_ranking_is_built() -> None:
    assert COMPILED, (
        "models/cooccurrence_rank.pyx is not built: run `bash scripts/bootstrap.sh` (needs a C compiler)"
    )
    assert ItemCooccurrence().compiled and not ItemCooccurrence(compiled=False).compiled


@settings(max_examples=400, deadline=None)
@given(rows=rows, k=st.integers(0, 25), excluded=st.sets(items, max_size=6),
       popularity=popularity, scale=st.floats(0.001, 10.0))
def test_the_compiled_ranking_is_the_reference(
    rows: list[tuple[dict[str, float], float]], k: int, excluded: set[str],
    popularity: dict[str, float | None], scale: float,
) -> None:
    # Each row gets its own copies of the ids, as rows read from Redis have:
    # equal items are then different objects. Every other row is built the
    # way the worker loads it (hashes computed when first ranked).
    built = [
        Neighbours.from_flat([x for i, w in row.items() for x in (i.encode().decode(), repr(w))])
        if n % 2 else Neighbours.from_pairs((i.encode().decode(), w) for i, w in row.items())
        for n, (row, _) in enumerate(rows)
    ]
    relatives = [1.0] + [r for _, r in rows[1:]]
    from models.cooccurrence_rank import rank_votes as compiled_rank_votes  # fails here if not built

    expected = rank_votes(built, relatives, k, excluded, popularity, scale)
    assert compiled_rank_votes(built, relatives, k, excluded, popularity, scale) == expected


def test_recommendations_are_the_same_with_and_without_the_compiled_ranking() -> None:
    rng = random.Random(7)
    compiled, python = ItemCooccurrence(), ItemCooccurrence(compiled=False)
    sessions = [[rng.choice(ITEMS) for _ in range(rng.randint(1, 8))] for _ in range(300)]
    for session in sessions:
        types = [rng.choice(["view", "click", "cart"]) for _ in session]
        for model in (compiled, python):
            for n, (item, event_type) in enumerate(zip(session, types)):
                model.learn_one(session[:n], item, event_type, ts=0.0)
    popular = {i: float(rng.randint(0, 5)) for i in ITEMS}
    for session in sessions:
        for n in range(1, len(session) + 1):
            args = (session[:n], 10, set(session[:1]), ITEMS, popular)
            assert compiled.recommend(*args) == python.recommend(*args)
