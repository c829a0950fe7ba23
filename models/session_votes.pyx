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
from cpython.tuple cimport PyTuple_GET_ITEM
from cpython.object cimport Py_EQ, Py_GT, PyObject, PyObject_Hash, PyObject_RichCompareBool
from cpython.float cimport PyFloat_AsDouble
from libc.math cimport pow
from libc.stdlib cimport free, malloc
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
    created[0] = True
    return e


cdef struct Near:
    double sim
    double ts  # the latest time the session touched a shared item
    PyObject* key
    PyObject* items  # the session's item list and their hashes (borrowed)
    PyObject* hashes


cdef inline bint _nearer(const Near* x, const Near* y):
    """x before y: higher similarity, then the later touch, then the larger id."""
    if x.sim != y.sim:
        return x.sim > y.sim
    if x.ts != y.ts:
        return x.ts > y.ts
    # Distinct str ids: the comparison cannot fail.
    return PyObject_RichCompareBool(<object>x.key, <object>y.key, Py_GT) == 1


cdef void _sort(Near* a, Py_ssize_t n):
    """Sort nearest first: quicksort, insertion sort for short runs (qsort's
    calls through a pointer per comparison were a fifth of the time)."""
    cdef Py_ssize_t i, j, lo = 0, hi = n - 1, mid
    cdef Near pivot, tmp
    while hi - lo > 16:
        mid = lo + (hi - lo) // 2
        # Median of three as the pivot.
        if _nearer(&a[mid], &a[lo]):
            tmp = a[mid]; a[mid] = a[lo]; a[lo] = tmp
        if _nearer(&a[hi], &a[lo]):
            tmp = a[hi]; a[hi] = a[lo]; a[lo] = tmp
        if _nearer(&a[hi], &a[mid]):
            tmp = a[hi]; a[hi] = a[mid]; a[mid] = tmp
        pivot = a[mid]
        i, j = lo, hi
        while i <= j:
            while _nearer(&a[i], &pivot):
                i += 1
            while _nearer(&pivot, &a[j]):
                j -= 1
            if i <= j:
                tmp = a[i]; a[i] = a[j]; a[j] = tmp
                i += 1
                j -= 1
        # Recurse into the smaller side, loop on the larger.
        if j - lo < hi - i:
            _sort(&a[lo], j - lo + 1)
            lo = i
        else:
            _sort(&a[i], hi - i + 1)
            hi = j
    for i in range(lo + 1, hi + 1):
        tmp = a[i]
        j = i - 1
        while j >= lo and _nearer(&tmp, &a[j]):
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = tmp


# Powers a session can need (item_decay ** steps, length ** length_norm), made
# once per pair of parameters: pow() per vote was a good part of the time.
DEF POWERS = 65
cdef double _decays[POWERS]
cdef double _norms[POWERS]
cdef double _made_for[2]
_made_for[0] = -1.0
_made_for[1] = -1.0


cdef void _powers(double decay, double length_norm) noexcept:
    cdef Py_ssize_t i
    if _made_for[0] == decay and _made_for[1] == length_norm:
        return
    for i in range(POWERS):
        _decays[i] = pow(decay, <double>i)
        _norms[i] = pow(<double>i, length_norm)
    _made_for[0] = decay
    _made_for[1] = length_norm


cdef array _HASHES = make_array("q")
cdef array _WEIGHTS = make_array("d")


def votes(model, session_items, own, occurrences):
    """See :meth:`models.session_neighbours.SessionNeighbours.votes`."""
    cdef dict item_sessions = model.item_sessions, sessions = model.sessions
    cdef double length_norm = model.length_norm, decay = model.item_decay
    cdef Py_ssize_t k = model.neighbours
    weights = model.weights(session_items, occurrences)
    cdef Py_ssize_t capacity = 0, pos, i, j, n_items, anchor, top, step
    cdef PyObject* key
    cdef PyObject* value
    cdef PyObject* found
    cdef Entry* e
    cdef Near* c
    cdef Near* near = NULL
    cdef bint created
    cdef double w, sim, ts, total = 0.0
    cdef Table cands, items_table
    cdef array hashes, values, session_hashes
    cdef Py_hash_t h
    # The current session's weighted items, by hash: a neighbour's items are
    # matched against them without visiting their strings.
    cdef Py_hash_t own_hashes[64]
    cdef PyObject* own_items[64]
    cdef Py_ssize_t n_own = 0, m
    cdef bint shared
    _powers(decay, length_norm)
    rows = []
    for item, w in weights.items():
        if n_own < 64:
            own_items[n_own] = <PyObject*>item
            own_hashes[n_own] = PyObject_Hash(item)
            n_own += 1
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
                ts = PyFloat_AsDouble(<object>value)
                if created or ts > e.ts:
                    e.ts = ts
        # Similarities; sessions without items (or the own one) drop out.
        near = <Near*>malloc(cands.n * sizeof(Near))
        if near == NULL:
            raise MemoryError()
        j = 0
        for i in range(cands.n):
            e = &cands.entries[i]
            if own is not None and PyObject_RichCompareBool(<object>e.key, own, Py_EQ) == 1:
                continue
            found = PyDict_GetItemWithError(sessions, e.key)
            if found == NULL:
                continue
            n_items = PyList_GET_SIZE(<list>PyTuple_GET_ITEM(<tuple>found, 0))
            if n_items == 0:
                continue
            c = &near[j]
            j += 1
            c.key = e.key
            c.sim = e.value / (_norms[n_items] if n_items < POWERS else pow(<double>n_items, length_norm))
            c.ts = e.ts
            c.items = PyTuple_GET_ITEM(<tuple>found, 0)
            c.hashes = PyTuple_GET_ITEM(<tuple>found, 1)
        _sort(near, j)
        top = min(j, k)
        capacity = 0
        for i in range(top):
            capacity += PyList_GET_SIZE(<list>near[i].items)
        _init(&items_table, capacity)
        for i in range(top):
            c = &near[i]
            sim = c.sim
            total += sim
            n_items = PyList_GET_SIZE(<list>c.items)
            session_hashes = <array>c.hashes
            if len(session_hashes) != n_items:
                raise ValueError("a session's items and hashes differ in length")
            anchor = n_items - 1
            while anchor > 0:
                # Is the item at anchor one of the current session's? (hash first)
                key = PyList_GET_ITEM(<list>c.items, anchor)
                h = session_hashes.data.as_longlongs[anchor]
                shared = False
                for m in range(n_own):
                    if own_hashes[m] == h and (own_items[m] == key or PyObject_RichCompareBool(
                            <object>own_items[m], <object>key, Py_EQ) == 1):
                        shared = True
                        break
                if shared:
                    break
                anchor -= 1
            for pos in range(n_items):
                key = PyList_GET_ITEM(<list>c.items, pos)
                e = _get(&items_table, key, session_hashes.data.as_longlongs[pos], &created)
                step = pos - anchor if pos >= anchor else anchor - pos
                e.value = e.value + sim * (_decays[step] if step < POWERS else pow(decay, <double>step))
        item_ids = []
        hashes = clone(_HASHES, items_table.n, False)
        values = clone(_WEIGHTS, items_table.n, False)
        for i in range(items_table.n):
            e = &items_table.entries[i]
            item_ids.append(<object>e.key)
            hashes.data.as_longlongs[i] = e.hash
            values.data.as_doubles[i] = e.value / total if total > 0 else e.value
    finally:
        free(near)
        _free(&cands)
        _free(&items_table)
    result.item_ids = item_ids
    result.weights = values
    result._hashes = hashes
    result._slot = None
    return result
