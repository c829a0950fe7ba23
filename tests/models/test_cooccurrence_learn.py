"""The compiled co-occurrence learning (models/cooccurrence_learn.pyx) gives the
Python reference's results bit for bit: same increments, same rows in the
same order, same occurrences, same batch totals."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from models.cooccurrence import COMPILED, ItemCooccurrence
from models.neighbours import Neighbours

ITEMS = [f"i{n}" for n in range(12)]
items = st.sampled_from(ITEMS)
event = st.tuples(items, st.sampled_from(["view", "click", "cart", "purchase", "wishlist"]),
                  st.floats(0.0, 5e6))
existing = st.dictionaries(items, st.dictionaries(items, st.integers(1, 9).map(lambda n: n * 840.0),
                                                  max_size=6), max_size=6)


def rows(model: ItemCooccurrence) -> dict[str, tuple[list[str], list[float], list[int]]]:
    """Every row as its items, weights and hashes, in the row's own order."""
    out = {}
    for source, row in model.neighbours.items():
        ids, hashes, weights = row.arrays()
        out[source] = (list(ids), list(weights), list(hashes))
    return out


def test_the_compiled_learning_is_built() -> None:
    assert COMPILED, (
        "models/cooccurrence_learn.pyx is not built: run `bash scripts/bootstrap.sh` (needs a C compiler)"
    )


@settings(max_examples=300, deadline=None)
@given(sessions=st.lists(st.lists(event, min_size=1, max_size=14), min_size=1, max_size=5),
       window=st.integers(1, 12), backward=st.sampled_from([0.0, 0.5, 0.3]),
       repeat=st.sampled_from([0.0, 3.0, 1.7]), half_life_s=st.sampled_from([None, 86400.0, 3e5]),
       before=existing)
def test_the_compiled_learning_is_the_reference(
    sessions: list[list[tuple[str, str, float]]], window: int, backward: float, repeat: float,
    half_life_s: float | None, before: dict[str, dict[str, float]],
) -> None:
    models = [ItemCooccurrence(window=window, backward=backward, repeat=repeat,
                               half_life_s=half_life_s, origin=0.0, compiled=compiled)
              for compiled in (True, False)]
    for model in models:
        for n, (source, row) in enumerate(before.items()):
            # As a worker has them: read from Redis (no slots, no hashes yet) or built here.
            flat = [x for item, w in row.items() for x in (item, repr(w))]
            model.neighbours[source] = Neighbours.from_flat(flat) if n % 2 else Neighbours.from_pairs(row.items())
    assert models[0].compiled and not models[1].compiled
    results = []
    for model in models:
        totals: dict[tuple[str, str], float] = {}
        learnt = []
        for session in sessions:
            seen: list[str] = []
            for item, event_type, ts in session:
                learnt.append(model.learn_one(seen, item, event_type, ts, totals))
                if item in seen:
                    seen.remove(item)
                seen.append(item)
        results.append((learnt, totals, rows(model), model.occurrences))
    compiled, python = results
    assert compiled[0] == python[0]
    assert [type(w) for pairs, _ in compiled[0] for _, _, w in pairs] == \
        [type(w) for pairs, _ in python[0] for _, _, w in pairs]
    assert compiled[1:] == python[1:]
