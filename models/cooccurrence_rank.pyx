# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled ranking of co-occurrence votes: :func:`models.cooccurrence.rank_votes`
in C, with the same results bit for bit.

The Python version adds every neighbour's vote into a dict of boxed floats
and sorts them all. Here the rows' arrays (:class:`models.neighbours.Neighbours`)
are summed into a C hash table of doubles keyed by the rows' own item
objects and hashes, the k-th best score is found by selection, and only the
candidates that can make the list are sorted.
"""

from cpython.array cimport array
from cpython.list cimport PyList_GET_ITEM
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_AsDouble, PyFloat_CheckExact
from cpython.object cimport Py_EQ, Py_LT, PyObject, PyObject_Hash, PyObject_RichCompareBool
from libc.math cimport INFINITY, pow
from libc.stdlib cimport free, malloc, qsort
from libc.stdint cimport int32_t
from libc.string cimport memcpy, memset


cdef extern from "Python.h":
    PyObject* PyDict_GetItemWithError(object mapping, PyObject* key) except? NULL


from models.neighbours import NumberedVotes


cdef struct Candidate:
    double score
    double popularity
    PyObject* item


cdef struct Entry:
    PyObject* item  # borrowed from the rows, which outlive the call
    Py_hash_t hash
    double score
    bint live


# Scratch for every call (the GIL serialises them), grown as needed. The hash
# table holds entry numbers + 1 (0: empty), 4 bytes a slot, so that it stays
# small enough to be in cache; the entries themselves are dense, in the
# order first met.
cdef int32_t* _table = NULL
cdef Py_ssize_t _table_size = 0
cdef Entry* _entries = NULL
cdef double* _values = NULL
cdef Candidate* _best = NULL
cdef Py_ssize_t _entries_size = 0


cdef int _reserve(Py_ssize_t entries, Py_ssize_t* mask) except -1:
    """Scratch for this many entries; an empty table of a fitting size."""
    global _table, _table_size, _entries, _values, _best, _entries_size
    cdef Py_ssize_t size = 64
    while size < 2 * entries:
        size *= 2
    if size > _table_size:
        free(_table)
        _table = <int32_t*>malloc(size * sizeof(int32_t))
        _table_size = 0 if _table == NULL else size
    if entries > _entries_size:
        free(_entries)
        free(_values)
        free(_best)
        _entries = <Entry*>malloc(entries * sizeof(Entry))
        _values = <double*>malloc(entries * sizeof(double))
        _best = <Candidate*>malloc(entries * sizeof(Candidate))
        _entries_size = entries
        if _entries == NULL or _values == NULL or _best == NULL:
            _entries_size = 0
    if _table_size == 0 or _entries_size < entries:
        raise MemoryError()
    memset(_table, 0, size * sizeof(int32_t))
    mask[0] = size - 1
    return 0


cdef Py_ssize_t _find(Py_ssize_t mask, PyObject* item, Py_hash_t h) except -2:
    """The item's table slot, or the empty slot where it belongs."""
    cdef Py_ssize_t i = <Py_ssize_t>(<size_t>h & <size_t>mask)
    cdef Entry* e
    cdef int same
    while _table[i] != 0:
        e = &_entries[_table[i] - 1]
        if e.item == item:
            return i
        if e.hash == h:
            same = PyObject_RichCompareBool(<object>e.item, <object>item, Py_EQ)
            if same < 0:
                return -2
            if same:
                return i
        i = (i + 1) & mask
    return i


cdef inline int _add(Py_ssize_t mask, PyObject* item, Py_hash_t h, double w, Py_ssize_t r,
                     double relative, Py_ssize_t* n) except -1:
    """Row r's vote w for the item."""
    cdef Py_ssize_t s = _find(mask, item, h)
    cdef Entry* e
    if _table[s] == 0:
        _table[s] = <int32_t>(n[0] + 1)
        e = &_entries[n[0]]
        n[0] += 1
        e.item = item
        e.hash = h
        e.live = True
        # The first row is taken as it is, later ones relative to it.
        e.score = w if r == 0 else 0.0 + w * relative
    elif r > 0:
        e = &_entries[_table[s] - 1]
        e.score = e.score + w * relative
    return 0


cdef inline double _as_double(PyObject* value) except? -1.0:  # popularity may hold ints
    if PyFloat_CheckExact(<object>value):
        return PyFloat_AS_DOUBLE(<object>value)
    return PyFloat_AsDouble(<object>value)


cdef double _kth_largest(double* values, Py_ssize_t n, Py_ssize_t k):
    """The k-th largest of values[:n] (1-based k <= n); reorders values."""
    cdef Py_ssize_t lo = 0, hi = n - 1, i, j, target = k - 1
    cdef double pivot, tmp
    while lo < hi:
        pivot = values[(lo + hi) // 2]
        i, j = lo, hi
        while i <= j:
            while values[i] > pivot:
                i += 1
            while values[j] < pivot:
                j -= 1
            if i <= j:
                tmp = values[i]; values[i] = values[j]; values[j] = tmp
                i += 1
                j -= 1
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            break
    return values[target]


cdef int _higher_score(const void* a, const void* b) noexcept nogil:
    cdef double x = (<const Candidate*>a).score, y = (<const Candidate*>b).score
    return -1 if x > y else (1 if x < y else 0)


cdef int _tie_order(const void* a, const void* b) noexcept nogil:
    """Among equal scores: the more popular first, then the smaller id."""
    cdef const Candidate* x = <const Candidate*>a
    cdef const Candidate* y = <const Candidate*>b
    if x.popularity != y.popularity:
        return -1 if x.popularity > y.popularity else 1
    # Ids are distinct strings, whose comparison cannot fail. (The caller
    # holds the GIL; qsort only insists on a nogil function.)
    with gil:
        return -1 if PyObject_RichCompareBool(<object>x.item, <object>y.item, Py_LT) == 1 else 1


cdef int _settle_ties(Candidate* best, Py_ssize_t m, Py_ssize_t k, dict popularity) except -1:
    """Order each run of equal scores that reaches into the first k by
    popularity, then id; popularity is looked up only for those."""
    cdef Py_ssize_t i = 0, j, r
    while i < m and i < k:
        j = i + 1
        while j < m and best[j].score == best[i].score:
            j += 1
        if j - i > 1:
            for r in range(i, j):
                # As the reference: a missing or None popularity counts as 0.
                found = PyDict_GetItemWithError(popularity, best[r].item)
                if found == NULL or found == <PyObject*>None:
                    best[r].popularity = 0.0
                else:
                    best[r].popularity = _as_double(found)
            qsort(&best[i], j - i, sizeof(Candidate), _tie_order)
        i = j
    return 0


def rank_session(model, session_items, Py_ssize_t k, excluded, popularity, extra=None,
                 double extra_weight=0.0) -> tuple:
    """See :meth:`models.cooccurrence.ItemCooccurrence.rank_python`: the
    session's votes (``ItemCooccurrence._votes``) and their ranking, in one call."""
    cdef dict neighbours = model.neighbours, occurrences = model.occurrences
    cdef Py_ssize_t horizon = model.horizon, n = len(session_items), distance
    cdef double decay = model.position_decay, normalise = model.normalise
    cdef double vote = 1.0, base = 1.0, occ, scale
    cdef list rows = [], relatives = []
    cdef PyObject* found
    cdef PyObject* found_occ
    for distance in range(min(horizon, n)):
        source = session_items[n - 1 - distance]
        found = PyDict_GetItemWithError(neighbours, <PyObject*>source)
        if found != NULL and len((<object>found).item_ids) > 0:
            found_occ = PyDict_GetItemWithError(occurrences, <PyObject*>source)
            occ = 0.0 if found_occ == NULL else _as_double(found_occ)
            scale = vote / pow(occ, normalise) if occ > 0 else vote
            if not rows:
                base = scale
            rows.append(<object>found)
            relatives.append(scale / base)
        vote *= decay
    if extra is not None and len(extra.weights) > 0 and extra_weight > 0:
        if rows:
            rows.append(extra)
            relatives.append(extra_weight / base)
        else:
            rows, relatives, base = [extra], [1.0], extra_weight
    return _rank(rows, relatives, k, excluded, popularity, base)


def rank_votes(list rows, list relatives, Py_ssize_t k, excluded, popularity, double scale=1.0) -> tuple:
    """See :func:`models.cooccurrence.rank_votes`."""
    return _rank(rows, relatives, k, excluded, popularity, scale)


cdef tuple _rank(list rows, list relatives, Py_ssize_t k, excluded, popularity, double scale):
    if not rows or k <= 0:
        return [], []
    if type(popularity) is not dict:
        popularity = dict(popularity)
    cdef Py_ssize_t entries = 0, mask = 0, n = 0, r, s, live = 0, m = 0, i
    cdef list items
    cdef array hashes, weights, addresses
    cdef PyObject* item
    cdef Py_hash_t h
    cdef double relative, w, floor
    cdef Entry* e
    for row in rows:
        entries += len(row.weights)
    _reserve(entries, &mask)
    for r in range(len(rows)):
        row = rows[r]
        if type(row) is NumberedVotes and row.addresses is not None and row._hashes is not None:
            # The votes of a session index: its items' addresses, no list of their own.
            addresses, hashes, weights = row.addresses, row._hashes, row.weights
            if len(addresses) != len(weights) or len(hashes) != len(weights):
                raise ValueError("a NumberedVotes row's arrays differ in length")
            relative = relatives[r]
            for i in range(len(weights)):
                _add(mask, <PyObject*>addresses.data.as_longlongs[i], hashes.data.as_longlongs[i],
                     weights.data.as_doubles[i], r, relative, &n)
            continue
        if row._hashes is None:  # loaded, not yet hashed: Neighbours.arrays() does it
            items, hashes, weights = row.arrays()
        else:  # the same arrays, without a Python call
            items, hashes, weights = row.item_ids, row._hashes, row.weights
        relative = relatives[r]
        if len(hashes) != len(items) or len(weights) != len(items):
            raise ValueError("a Neighbours row's arrays differ in length")
        for i in range(len(items)):
            _add(mask, PyList_GET_ITEM(items, i), hashes.data.as_longlongs[i], weights.data.as_doubles[i],
                 r, relative, &n)
    for other in excluded:
        s = _find(mask, <PyObject*>other, PyObject_Hash(other))
        if _table[s] != 0:
            _entries[_table[s] - 1].live = False
    for r in range(n):
        if _entries[r].live:
            _values[live] = _entries[r].score
            live += 1
    floor = _kth_largest(_values, live, k) if live > k else -INFINITY
    for r in range(n):
        e = &_entries[r]
        if e.live and e.score >= floor:
            _best[m].score = e.score
            _best[m].item = e.item
            m += 1
    qsort(_best, m, sizeof(Candidate), _higher_score)
    _settle_ties(_best, m, k, popularity)
    # The lists are built from a copy: making them may run the GC, whose
    # finalisers could (in principle) rank again and reuse the scratch.
    cdef Py_ssize_t top = min(m, k)
    cdef Candidate* chosen = <Candidate*>malloc(top * sizeof(Candidate) + 1)
    if chosen == NULL:
        raise MemoryError()
    memcpy(chosen, _best, top * sizeof(Candidate))
    try:
        return ([<object>chosen[r].item for r in range(top)],
                [chosen[r].score * scale for r in range(top)])
    finally:
        free(chosen)
