# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Compiled days without a sale: :func:`models.demand.zero_days_python` in C,
with the same results bit for bit (the same double operations in the same order).

A series that sold today learns every day since its last sale first, one
loop turn per day (1.5 days per order line on the online-retail data),
which in Python took close to half of what learning a series's day took.
"""


def zero_days(double demand, double total, double squares, double expected, double decay,
              double errors, list weights, int first, int days):
    """``days`` days without a sale from weekday ``first`` on: (total, squares, expected)."""
    cdef double w[7]
    cdef double mean, weight
    cdef int i, d = first
    for i in range(7):
        w[i] = weights[i]
    for i in range(days):
        weight = w[d]
        if total > 0:
            mean = demand / total * weight
            squares = squares * errors + mean * mean
            expected = expected * errors + mean
        demand *= decay
        total = total * decay + weight
        d = d + 1 if d < 6 else 0
    return total, squares, expected
