# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled co-occurrence learning: :meth:`models.cooccurrence.ItemCooccurrence.increments`
followed by ``apply``, in C, with the same results bit for bit.

An event adds up to two increments per earlier session item (twenty with the
default window), and in Python each one is a tuple, a rounding, a method call
and two dict lookups: most of what learning an event costs. Here the loop
runs in C and adds into the rows' own arrays (:class:`models.neighbours.Neighbours`).
"""

from cpython.array cimport array
from libc.math cimport rint

from models.neighbours import Neighbours


cdef object _whole(double x):
    """Python's ``round(x)`` of a float: the nearest integer, halves to even, as an int."""
    return int(rint(x))


cdef int _add(dict neighbours, object source, object target, object weight) except -1:
    """``Neighbours.add`` of ``neighbours[source]`` (created when missing)."""
    row = neighbours.get(source)
    if row is None:
        row = neighbours[source] = Neighbours()
    slots = row._slot
    if slots is None:
        slots = row._slots()
    slot = (<dict>slots).get(target)
    cdef array weights = row.weights
    if slot is None:
        item_ids = row.item_ids
        (<dict>slots)[target] = len(item_ids)
        (<list>item_ids).append(target)
        weights.append(weight)
        hashes = row._hashes
        if hashes is not None:
            hashes.append(hash(target))
    else:
        weights.data.as_doubles[<Py_ssize_t>slot] += <double>weight
    return 0


cdef int _journal(dict totals, object source, object target, object weight) except -1:
    key = (source, target)
    found = totals.get(key)
    totals[key] = (0.0 if found is None else found) + weight
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
            increment = _whole(repeat * w / <double>distance)
            pairs.append((item_id, item_id, increment))
            _add(neighbours, item_id, item_id, increment)
            if totals is not None:
                _journal(totals, item_id, item_id, increment)
            continue
        increment = _whole(w / <double>distance)
        pairs.append((earlier, item_id, increment))
        _add(neighbours, earlier, item_id, increment)
        if totals is not None:
            _journal(totals, earlier, item_id, increment)
        if backward:
            increment = _whole(backward * w / <double>distance)
            pairs.append((item_id, earlier, increment))
            _add(neighbours, item_id, earlier, increment)
            if totals is not None:
                _journal(totals, item_id, earlier, increment)
    occurrence = _whole(w)
    occurrences = model.occurrences
    occurrences[item_id] = occurrences.get(item_id, 0.0) + occurrence
    return pairs, occurrence
