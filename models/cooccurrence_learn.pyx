# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled co-occurrence learning: :meth:`models.cooccurrence.ItemCooccurrence.increments`
followed by ``apply``, in C, with the same results bit for bit.

An event adds up to two increments per earlier session item (twenty with the
default window), and in Python each one is a tuple, a rounding, a row lookup
and a sum for the batch's journal: most of what learning an event costs. Here
that loop runs in C, and so does ``Neighbours.add`` on each row's arrays.
"""

from cpython.array cimport array
from libc.math cimport rint

from models.neighbours import Neighbours


cdef int _add(row, target, double w) except -1:
    """``Neighbours.add``, without a Python call per increment (half of what
    learning cost with it)."""
    cdef dict slots = row._slot
    if slots is None:
        slots = row._slots()
    cdef array weights = row.weights
    cdef array hashes
    slot = slots.get(target)
    if slot is None:
        items = <list>row.item_ids
        slots[target] = len(items)
        items.append(target)
        weights.append(w)
        hashes = row._hashes
        if hashes is not None:
            hashes.append(hash(target))
    else:
        weights.data.as_doubles[<Py_ssize_t>slot] += w
    return 0


cdef int _increment(list pairs, dict neighbours, dict totals, source, target, double w) except -1:
    """One increment, rounded as Python's ``round`` does (halves to even):
    listed, applied to ``neighbours[source]`` (``ItemCooccurrence.apply``)
    and summed into ``totals`` if given."""
    increment = int(rint(w))
    pairs.append((source, target, increment))
    row = neighbours.get(source)
    if row is None:
        row = neighbours[source] = Neighbours()
    _add(row, target, increment)
    if totals is not None:
        key = (source, target)
        found = totals.get(key)
        totals[key] = (0.0 if found is None else found) + increment
    return 0


def learn_one(model, session_items, item_id, double w, dict totals=None) -> tuple:
    """See :meth:`models.cooccurrence.ItemCooccurrence.learn_one`; ``w`` is
    the event's weight (:meth:`~models.cooccurrence.ItemCooccurrence.weight`)."""
    cdef double backward = model.backward, repeat = model.repeat
    cdef Py_ssize_t window = model.window, n = len(session_items), i, distance = 0
    cdef dict neighbours = model.neighbours
    cdef list pairs = []
    for i in range(n - 1, -1, -1):
        distance += 1
        if distance > window:
            break
        earlier = session_items[i]
        if earlier == item_id:
            _increment(pairs, neighbours, totals, item_id, item_id, repeat * w / <double>distance)
            continue
        _increment(pairs, neighbours, totals, earlier, item_id, w / <double>distance)
        if backward:
            _increment(pairs, neighbours, totals, item_id, earlier, backward * w / <double>distance)
    occurrence = int(rint(w))
    occurrences = model.occurrences
    occurrences[item_id] = occurrences.get(item_id, 0.0) + occurrence
    return pairs, occurrence
