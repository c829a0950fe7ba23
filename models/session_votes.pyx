# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled session-neighbour votes: :meth:`models.session_neighbours.SessionNeighbours.votes_python`
in C, with the same results bit for bit.

A prediction finds a few hundred candidate sessions and sums a few hundred
votes; in Python each is a dict update of boxed floats. Here both sums go
into C hash tables keyed by the sessions' and items' own string objects, in
the order first met (the order the Python reference's dicts keep), and the
nearest sessions are chosen by one sort of C structs.
"""

from array import array as make_array

from cpython.array cimport array, clone
from cpython.dict cimport PyDict_Next
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport Py_EQ, Py_GT, PyObject, PyObject_Hash, PyObject_RichCompareBool
from libc.math cimport fabs, log1p, pow
from libc.stdlib cimport free, malloc, qsort, realloc
from libc.stdint cimport int32_t
from libc.string cimport memset

from models.neighbours import Neighbours


cdef extern from "Python.h":
    PyObject* PyDict_GetItemWithError(object mapping, PyObject* key) except? NULL


cdef struct Entry:
    PyObject* key  # borrowed: the model's dicts and lists outlive the call
    Py_hash_t hash
    double value
    double ts
    PyObject* items  # a candidate session's item list (borrowed)


cdef struct Table:
    int32_t* slots  # entry number + 1; 0: empty
    Py_ssize_t mask
    Entry* entries
    Py_ssize_t n, capacity


cdef int _init(Table* t, Py_ssize_t capacity) except -1:
    cdef Py_ssize_t size = 64
    while size < 2 * capacity:
        size *= 2
    t.slots = <int32_t*>malloc(size * sizeof(int32_t))
    t.entries = <Entry*>malloc(capacity * sizeof(Entry))
    if t.slots == NULL or t.entries == NULL:
        raise MemoryError()
    memset(t.slots, 0, size * sizeof(int32_t))
    t.mask = size - 1
    t.n = 0
    t.capacity = capacity
    return 0


cdef void _free(Table* t) noexcept:
    free(t.slots)
    free(t.entries)
    t.slots = NULL
    t.entries = NULL


cdef Entry* _get(Table* t, PyObject* key, Py_hash_t h, bint* created) except NULL:
    """The key's entry, made (value 0) if new; entries keep the order first met."""
    cdef Py_ssize_t i = <Py_ssize_t>(<size_t>h & <size_t>t.mask)
    cdef Entry* e
    cdef int same
    while t.slots[i] != 0:
        e = &t.entries[t.slots[i] - 1]
        if e.key == key:
            created[0] = False
            return e
        if e.hash == h:
            same = PyObject_RichCompareBool(<object>e.key, <object>key, Py_EQ)
            if same < 0:
                return NULL
            if same:
                created[0] = False
                return e
        i = (i + 1) & t.mask
    if t.n == t.capacity:
        raise MemoryError("session votes: table full")
    t.slots[i] = <int32_t>(t.n + 1)
    e = &t.entries[t.n]
    t.n += 1
    e.key = key
    e.hash = h
    e.value = 0.0
    e.ts = 0.0
    e.items = NULL
    created[0] = True
    return e


cdef int _nearer(const void* a, const void* b) noexcept nogil:
    """Higher similarity first, then the newer session, then the larger id."""
    cdef const Entry* x = <const Entry*>a
    cdef const Entry* y = <const Entry*>b
    if x.value != y.value:
        return -1 if x.value > y.value else 1
    if x.ts != y.ts:
        return -1 if x.ts > y.ts else 1
    with gil:  # distinct str ids: the comparison cannot fail
        return -1 if PyObject_RichCompareBool(<object>x.key, <object>y.key, Py_GT) == 1 else 1


cdef array _HASHES = make_array("q")
cdef array _WEIGHTS = make_array("d")


def votes(model, session_items, own, occurrences):
    """See :meth:`models.session_neighbours.SessionNeighbours.votes`."""
    cdef dict item_sessions = model.item_sessions, sessions = model.sessions
    cdef dict session_ts = model.session_ts
    cdef double length_norm = model.length_norm, decay = model.item_decay
    cdef Py_ssize_t k = model.neighbours
    weights = model.weights(session_items, occurrences)
    cdef Py_ssize_t capacity = 0, pos, i, j, n_items, anchor, top
    cdef PyObject* key
    cdef PyObject* value
    cdef PyObject* found
    cdef Entry* e
    cdef Entry* c
    cdef bint created
    cdef double w, sim, total = 0.0
    cdef Table cands, items_table
    cdef array hashes, values
    # pow() per vote was most of the time: the powers a session can need, once.
    cdef double[65] decays, norms
    for i in range(65):
        decays[i] = pow(decay, <double>i)
        norms[i] = pow(<double>i, length_norm)
    rows = []
    for item, w in weights.items():
        row = item_sessions.get(item)
        if row:
            rows.append((row, w))
            capacity += len(row)
    result = Neighbours()
    if capacity == 0:
        return result
    _init(&cands, capacity)
    items_table.slots = NULL
    items_table.entries = NULL
    try:
        for row, w in rows:
            pos = 0
            while PyDict_Next(<dict>row, &pos, &key, &value):
                e = _get(&cands, key, PyObject_Hash(<object>key), &created)
                e.value = e.value + w
        # Similarities, in place; sessions without items (or the own one) drop out.
        j = 0
        for i in range(cands.n):
            e = &cands.entries[i]
            if own is not None and PyObject_RichCompareBool(<object>e.key, own, Py_EQ) == 1:
                continue
            found = PyDict_GetItemWithError(sessions, e.key)
            if found == NULL or PyList_GET_SIZE(<list>found) == 0:
                continue
            c = &cands.entries[j]
            j += 1
            c.key = e.key
            n_items = PyList_GET_SIZE(<list>found)
            c.value = e.value / (norms[n_items] if n_items < 65 else pow(<double>n_items, length_norm))
            c.ts = <double>session_ts[<object>e.key]
            c.items = found
        qsort(cands.entries, j, sizeof(Entry), _nearer)
        top = min(j, k)
        capacity = 0
        for i in range(top):
            capacity += PyList_GET_SIZE(<list>cands.entries[i].items)
        _init(&items_table, capacity)
        for i in range(top):
            c = &cands.entries[i]
            sim = c.value
            total += sim
            n_items = PyList_GET_SIZE(<list>c.items)
            anchor = n_items - 1
            while anchor > 0 and PyDict_GetItemWithError(weights, PyList_GET_ITEM(<list>c.items, anchor)) == NULL:
                anchor -= 1
            for pos in range(n_items):
                key = PyList_GET_ITEM(<list>c.items, pos)
                e = _get(&items_table, key, PyObject_Hash(<object>key), &created)
                j = pos - anchor if pos >= anchor else anchor - pos
                e.value = e.value + sim * (decays[j] if j < 65 else pow(decay, <double>j))
        item_ids = []
        hashes = clone(_HASHES, items_table.n, False)
        values = clone(_WEIGHTS, items_table.n, False)
        for i in range(items_table.n):
            e = &items_table.entries[i]
            item_ids.append(<object>e.key)
            hashes.data.as_longlongs[i] = e.hash
            values.data.as_doubles[i] = e.value / total if total > 0 else e.value
    finally:
        _free(&cands)
        _free(&items_table)
    result.item_ids = item_ids
    result.weights = values
    result._hashes = hashes
    result._slot = None
    return result
