# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled session-neighbour votes: :meth:`models.session_neighbours.SessionNeighbours.votes_python`
in C, with the same results bit for bit.

A prediction visits ~150 candidate sessions and ~300 of their items. Read
from the model's dicts, each visit is a few Python objects scattered over the
heap (a dict entry, a boxed time, a tuple, a list, an array), and the vote
waits on memory most of its time. :class:`SessionIndex` keeps the same state
as numbers in a few contiguous C arrays: every item and session gets a
number once, an item's sessions are an array of (session number, time), a
session's items an array of item numbers, and the sums go into dense arrays
indexed by those numbers. The model updates the index wherever it changes
its dicts (:class:`models.session_neighbours.SessionNeighbours`).
"""

from array import array as make_array

from cpython.array cimport array, clone
from cpython.float cimport PyFloat_AsDouble
from cpython.object cimport Py_GT, PyObject, PyObject_RichCompareBool
from libc.math cimport log1p, pow
from libc.stdlib cimport free, malloc, realloc
from libc.stdint cimport int32_t
from libc.string cimport memset

from models.neighbours import Neighbours, NumberedVotes


cdef extern from "Python.h":
    PyObject* PyDict_GetItemWithError(object mapping, PyObject* key) except? NULL
    ctypedef struct PyListObject:
        PyObject** ob_item


# Occurrences are counted in 1/UNIT (models.session_neighbours.UNIT).
DEF UNIT = 840.0


cdef struct Listing:  # one item's sessions, in no particular order
    int32_t* sessions
    double* ts
    int32_t n, cap


cdef struct Session:
    # A running sum of the call (valid when stamp is the call's), then the
    # session's items, latest last: inline when they fit, so that the vote
    # finds them on the lines its similarity just read.
    double value
    double ts
    int32_t stamp
    int32_t n
    int32_t* overflow  # the items when more than fit inline
    int32_t items[1]  # really the index's ``inline_items``


cdef struct Sum:  # a running sum per item, valid when stamp is the call's
    double value
    PyObject* item  # its id (borrowed from item_ids)
    int32_t stamp


cdef struct Near:
    double sim
    double ts  # the latest time the session touched a shared item
    int32_t session
    int32_t n
    int32_t* items


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


cdef void* _grow(void* block, Py_ssize_t count, Py_ssize_t size) except NULL:
    cdef void* grown = realloc(block, count * size)
    if grown == NULL:
        raise MemoryError()
    return grown


cdef array _HASHES = make_array("q")
cdef array _WEIGHTS = make_array("d")
cdef array _NUMBERS = make_array("i")


cdef class SessionIndex:
    """The model's item lists and session items as numbers (see the module).

    >>> index = SessionIndex()
    >>> index.load("u1#1", ["tent", "stove"])
    >>> index.touch("tent", "u1#1", 10.0); index.touch("stove", "u1#1", 11.0)
    >>> index.listing("tent"), index.items("u1#1")
    ({'u1#1': 10.0}, ['tent', 'stove'])
    >>> index.unlist("tent", "u1#1")
    >>> index.listing("tent")
    {}
    """

    cdef dict item_no, session_no
    cdef list item_ids, session_ids
    cdef array item_hashes
    cdef Listing* listings
    cdef char* sessions  # Session records, ``stride`` bytes apart
    cdef Py_ssize_t stride, inline_items
    cdef Sum* item_sums
    cdef Py_ssize_t items_cap, sessions_cap
    cdef int32_t stamp
    # Scratch of a call: candidates, and the items voted for in the order first met.
    cdef Near* near
    cdef int32_t* met
    cdef Py_ssize_t near_cap, met_cap

    def __cinit__(self, Py_ssize_t inline_items=20):
        self.inline_items = max(1, inline_items)
        self.stride = (sizeof(Session) + (self.inline_items - 1) * sizeof(int32_t) + 7) // 8 * 8
        self.item_no = {}
        self.session_no = {}
        self.item_ids = []
        self.session_ids = []
        self.item_hashes = make_array("q")
        self.listings = NULL
        self.sessions = NULL
        self.item_sums = NULL
        self.items_cap = 0
        self.sessions_cap = 0
        self.stamp = 0
        self.near = NULL
        self.met = NULL
        self.near_cap = 0
        self.met_cap = 0

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(len(self.item_ids)):
            free(self.listings[i].sessions)
            free(self.listings[i].ts)
        for i in range(len(self.session_ids)):
            free(self._at(i).overflow)
        free(self.listings)
        free(self.sessions)
        free(self.item_sums)
        free(self.near)
        free(self.met)

    cdef int32_t _item(self, str item_id) except -1:
        """The item's number, given one if new."""
        found = self.item_no.get(item_id)
        if found is not None:
            return <int32_t>found
        cdef Py_ssize_t n = len(self.item_ids)
        if n == self.items_cap:
            self.items_cap = max(1024, 2 * self.items_cap)
            self.listings = <Listing*>_grow(self.listings, self.items_cap, sizeof(Listing))
            self.item_sums = <Sum*>_grow(self.item_sums, self.items_cap, sizeof(Sum))
        memset(&self.listings[n], 0, sizeof(Listing))
        memset(&self.item_sums[n], 0, sizeof(Sum))
        self.item_no[item_id] = n
        self.item_ids.append(item_id)
        self.item_sums[n].item = <PyObject*>item_id
        self.item_hashes.append(hash(item_id))
        return <int32_t>n

    cdef inline Session* _at(self, Py_ssize_t s) noexcept:
        return <Session*>(self.sessions + s * self.stride)

    cdef inline int32_t* _items(self, Session* session) noexcept:
        return session.overflow if session.overflow != NULL else session.items

    cdef int32_t _session(self, str session_id) except -1:
        """The session's number, given one if new. A number is never reused:
        item lists may still name a session whose items are gone."""
        found = self.session_no.get(session_id)
        if found is not None:
            return <int32_t>found
        cdef Py_ssize_t n = len(self.session_ids)
        if n == self.sessions_cap:
            self.sessions_cap = max(1024, 2 * self.sessions_cap)
            self.sessions = <char*>_grow(self.sessions, self.sessions_cap, self.stride)
        memset(self._at(n), 0, self.stride)
        self.session_no[session_id] = n
        self.session_ids.append(session_id)
        return <int32_t>n

    def load(self, str session_id, list items):
        """The session's items, latest last (an empty list: it has none)."""
        cdef int32_t s = self._session(session_id)
        cdef Py_ssize_t i, n = len(items)
        cdef int32_t* numbers
        # Items get their numbers first: that may move the session records.
        numbers = <int32_t*>malloc((n + 1) * sizeof(int32_t))
        if numbers == NULL:
            raise MemoryError()
        try:
            for i in range(n):
                numbers[i] = self._item(items[i])
        except BaseException:
            free(numbers)
            raise
        cdef Session* session = self._at(s)
        free(session.overflow)
        session.overflow = NULL
        if n > self.inline_items:
            session.overflow = numbers
        else:
            for i in range(n):
                session.items[i] = numbers[i]
            free(numbers)
        session.n = <int32_t>n

    def touch(self, str item_id, str session_id, double ts):
        """The item lists the session at ``ts``, or at its time there if later."""
        cdef Listing* row = &self.listings[self._item(item_id)]
        cdef int32_t s = self._session(session_id)
        cdef Py_ssize_t i
        for i in range(row.n):
            if row.sessions[i] == s:
                if ts > row.ts[i]:
                    row.ts[i] = ts
                return
        if row.n == row.cap:
            row.cap = max(4, 2 * row.cap)
            row.sessions = <int32_t*>_grow(row.sessions, row.cap, sizeof(int32_t))
            row.ts = <double*>_grow(row.ts, row.cap, sizeof(double))
        row.sessions[row.n] = s
        row.ts[row.n] = ts
        row.n += 1

    def list_row(self, str item_id, dict row):
        """The item lists exactly these sessions, at these times (a store's row)."""
        cdef Listing* listing = &self.listings[self._item(item_id)]
        cdef Py_ssize_t n = len(row), i = 0
        cdef int32_t s
        if n > listing.cap:
            listing.cap = <int32_t>n
            listing.sessions = <int32_t*>_grow(listing.sessions, n, sizeof(int32_t))
            listing.ts = <double*>_grow(listing.ts, n, sizeof(double))
        listing.n = 0
        for session_id, ts in row.items():
            s = self._session(session_id)
            listing = &self.listings[self.item_no[item_id]]
            listing.sessions[i] = s
            listing.ts[i] = ts
            i += 1
            listing.n = <int32_t>i

    def unlist(self, str item_id, str session_id):
        """The item no longer lists the session."""
        found_item = self.item_no.get(item_id)
        found_session = self.session_no.get(session_id)
        if found_item is None or found_session is None:
            return
        cdef Listing* row = &self.listings[<Py_ssize_t>found_item]
        cdef int32_t s = <int32_t>found_session
        cdef Py_ssize_t i
        for i in range(row.n):
            if row.sessions[i] == s:
                row.n -= 1
                row.sessions[i] = row.sessions[row.n]
                row.ts[i] = row.ts[row.n]
                return

    def listing(self, str item_id) -> dict:
        """The sessions the item lists, and their times (for tests)."""
        found = self.item_no.get(item_id)
        if found is None:
            return {}
        cdef Listing* row = &self.listings[<Py_ssize_t>found]
        return {self.session_ids[row.sessions[i]]: row.ts[i] for i in range(row.n)}

    def items(self, str session_id) -> list:
        """The session's items (for tests)."""
        found = self.session_no.get(session_id)
        if found is None:
            return []
        cdef Session* session = self._at(<Py_ssize_t>found)
        cdef int32_t* numbers = self._items(session)
        return [self.item_ids[numbers[i]] for i in range(session.n)]

    cdef int _reserve(self, Py_ssize_t near, Py_ssize_t met) except -1:
        if near > self.near_cap:
            self.near_cap = max(near, 2 * self.near_cap)
            self.near = <Near*>_grow(self.near, self.near_cap, sizeof(Near))
        if met > self.met_cap:
            self.met_cap = max(met, 2 * self.met_cap)
            self.met = <int32_t*>_grow(self.met, self.met_cap, sizeof(int32_t))
        return 0

    cdef int32_t _next_stamp(self):
        """A stamp no sum holds yet: the sums of earlier calls count as empty."""
        cdef Py_ssize_t i
        if self.stamp == 2147483647:
            for i in range(len(self.item_ids)):
                self.item_sums[i].stamp = 0
            for i in range(len(self.session_ids)):
                self._at(i).stamp = 0
            self.stamp = 0
        self.stamp += 1
        return self.stamp

    def votes(self, session_items, occurrences, own, Py_ssize_t horizon, double position_decay,
              double idf, Py_ssize_t k, double length_norm, double decay):
        """See :meth:`models.session_neighbours.SessionNeighbours.votes` (and
        ``weights`` there, which this computes as well, the same way)."""
        cdef int32_t stamp = self._next_stamp()
        # The weighted items the index knows, latest first, and their weights.
        cdef int32_t wanted[64]
        cdef double weight[64]
        cdef Py_ssize_t n_wanted = 0, capacity = 0, i, j, pos, m, top, anchor, step, n_met = 0
        cdef Py_ssize_t n_session = len(session_items), first = max(0, n_session - horizon)
        cdef int32_t s, own_no = -1, item
        cdef double w = 1.0, rarity, sim, total = 0.0
        cdef Listing* row
        cdef Session* session
        cdef Sum* e
        cdef Near* c
        cdef int32_t* numbers
        cdef bint shared
        cdef PyObject* found_occ
        cdef PyObject** ids
        _powers(decay, length_norm)
        if type(occurrences) is not dict:
            occurrences = dict(occurrences)
        if own is not None:
            found = self.session_no.get(own)
            if found is not None:
                own_no = <int32_t>found
        for pos in range(n_session - 1, first - 1, -1):
            found = self.item_no.get(session_items[pos])
            if found is not None:
                if n_wanted == 64:
                    raise ValueError("session votes: at most 64 items look for neighbours")
                item = <int32_t>found
                shared = False
                for m in range(n_wanted):
                    if wanted[m] == item:
                        shared = True
                        break
                if not shared:
                    found_occ = PyDict_GetItemWithError(occurrences, <PyObject*>self.item_ids[item])
                    rarity = pow(1.0 + log1p((0.0 if found_occ == NULL else PyFloat_AsDouble(<object>found_occ))
                                             / UNIT), idf)
                    wanted[n_wanted] = item
                    weight[n_wanted] = w / rarity
                    n_wanted += 1
                    capacity += self.listings[item].n
            w *= position_decay
        if capacity == 0:
            return Neighbours()
        self._reserve(capacity, 0)
        # Similarities: each session's summed weights, in the order the
        # reference adds them (the weighted items', latest first).
        for m in range(n_wanted):
            row = &self.listings[wanted[m]]
            w = weight[m]
            for i in range(row.n):
                session = self._at(row.sessions[i])
                if session.stamp != stamp:
                    session.stamp = stamp
                    session.value = 0.0 + w
                    session.ts = row.ts[i]
                else:
                    session.value = session.value + w
                    if row.ts[i] > session.ts:
                        session.ts = row.ts[i]
        # Each candidate once (stamp flipped to -stamp once taken); sessions
        # without items, and the own one, drop out.
        j = 0
        for m in range(n_wanted):
            row = &self.listings[wanted[m]]
            for i in range(row.n):
                s = row.sessions[i]
                session = self._at(s)
                if session.stamp != stamp:
                    continue
                session.stamp = -stamp
                if s == own_no or session.n == 0:
                    continue
                c = &self.near[j]
                j += 1
                c.session = s
                c.n = session.n
                c.items = self._items(session)
                c.sim = session.value / (_norms[c.n] if c.n < POWERS else pow(<double>c.n, length_norm))
                c.ts = session.ts
        ids = <PyObject**>(<PyListObject*>self.session_ids).ob_item
        top = min(j, k)
        if 0 < top < j:  # only the nearest k are sorted
            _select(self.near, j, top, ids)
        _sort(self.near, top, ids)
        capacity = 0
        for i in range(top):
            capacity += self.near[i].n
        self._reserve(0, capacity)
        for i in range(top):
            c = &self.near[i]
            sim = c.sim
            total += sim
            numbers = c.items
            anchor = c.n - 1
            while anchor > 0:
                shared = False
                for m in range(n_wanted):
                    if wanted[m] == numbers[anchor]:
                        shared = True
                        break
                if shared:
                    break
                anchor -= 1
            for pos in range(c.n):
                item = numbers[pos]
                e = &self.item_sums[item]
                step = pos - anchor if pos >= anchor else anchor - pos
                w = sim * (_decays[step] if step < POWERS else pow(decay, <double>step))
                if e.stamp != stamp:
                    e.stamp = stamp
                    e.value = 0.0 + w
                    self.met[n_met] = item
                    n_met += 1
                else:
                    e.value = e.value + w
        cdef array hashes = clone(_HASHES, n_met, False)
        cdef array values = clone(_WEIGHTS, n_met, False)
        cdef array chosen = clone(_NUMBERS, n_met, False)
        cdef array addresses = clone(_HASHES, n_met, False)
        for i in range(n_met):
            item = self.met[i]
            chosen.data.as_ints[i] = item
            addresses.data.as_longlongs[i] = <long long>self.item_sums[item].item
            hashes.data.as_longlongs[i] = self.item_hashes.data.as_longlongs[item]
            w = self.item_sums[item].value
            values.data.as_doubles[i] = w / total if total > 0 else w
        return NumberedVotes.of(self.item_ids, chosen, values, hashes, addresses)


cdef inline bint _nearer(const Near* x, const Near* y, PyObject** ids) noexcept:
    """x before y: higher similarity, then the later touch, then the larger id."""
    if x.sim != y.sim:
        return x.sim > y.sim
    if x.ts != y.ts:
        return x.ts > y.ts
    if x.session == y.session:  # the pivot against itself
        return False
    # Distinct str ids: the comparison cannot fail.
    return PyObject_RichCompareBool(<object>ids[x.session], <object>ids[y.session], Py_GT) == 1


cdef void _select(Near* a, Py_ssize_t n, Py_ssize_t k, PyObject** ids) noexcept:
    """Reorder so that the nearest k come first, in any order (0 < k < n)."""
    cdef Py_ssize_t lo = 0, hi = n - 1, i, j, target = k - 1
    cdef Near pivot, tmp
    while lo < hi:
        pivot = a[lo + (hi - lo) // 2]
        i, j = lo, hi
        while i <= j:
            while _nearer(&a[i], &pivot, ids):
                i += 1
            while _nearer(&pivot, &a[j], ids):
                j -= 1
            if i <= j:
                tmp = a[i]; a[i] = a[j]; a[j] = tmp
                i += 1
                j -= 1
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            break


cdef void _sort(Near* a, Py_ssize_t n, PyObject** ids) noexcept:
    """Sort nearest first: quicksort, insertion sort for short runs (qsort's
    calls through a pointer per comparison were a fifth of the time)."""
    cdef Py_ssize_t i, j, lo = 0, hi = n - 1, mid
    cdef Near pivot, tmp
    while hi - lo > 16:
        mid = lo + (hi - lo) // 2
        # Median of three as the pivot.
        if _nearer(&a[mid], &a[lo], ids):
            tmp = a[mid]; a[mid] = a[lo]; a[lo] = tmp
        if _nearer(&a[hi], &a[lo], ids):
            tmp = a[hi]; a[hi] = a[lo]; a[lo] = tmp
        if _nearer(&a[hi], &a[mid], ids):
            tmp = a[hi]; a[hi] = a[mid]; a[mid] = tmp
        pivot = a[mid]
        i, j = lo, hi
        while i <= j:
            while _nearer(&a[i], &pivot, ids):
                i += 1
            while _nearer(&pivot, &a[j], ids):
                j -= 1
            if i <= j:
                tmp = a[i]; a[i] = a[j]; a[j] = tmp
                i += 1
                j -= 1
        # Recurse into the smaller side, loop on the larger.
        if j - lo < hi - i:
            _sort(&a[lo], j - lo + 1, ids)
            lo = i
        else:
            _sort(&a[i], hi - i + 1, ids)
            hi = j
    for i in range(lo + 1, hi + 1):
        tmp = a[i]
        j = i - 1
        while j >= lo and _nearer(&tmp, &a[j], ids):
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = tmp
