# The compiled learner's fields and C methods, for stream/demand_sales.pyx to read
# and call without Python's attribute lookups and calls.

cdef inline int weekday(long day) noexcept:
    """Monday = 0 for a day counted from 1970-01-01 (a Thursday), as models.demand.weekday."""
    cdef int d = (day + 3) % 7
    return d + 7 if d < 0 else d


cpdef double nb_cdf(long k, double mean, double phi) noexcept


cdef class DayLearner:
    cdef public double half_life_days, units_half_life_days, spread, lump_cap, lump_keep
    cdef public double lines, weight, units, unit_lines, squares, expected
    cdef public double _decay, _slow, _errors
    cdef public tuple levels
    cdef long _last

    cdef bint learned(self) noexcept
    cdef double _level(self) noexcept
    cdef double _dispersion(self) noexcept
    cdef int _learn(self, double units, long day, list weights, bint counted, double lines) except -1
    cdef void _learn_zeros(self, long start, long end, list weights)
