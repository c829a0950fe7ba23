# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Compiled learning of a series' days: :class:`models.demand.DayLearnerPython`
and :func:`models.demand.zero_days_python` in C, with the same results bit for
bit (the same double operations in the same order, ``pow`` where Python has ``**``).

A day close learns one day per series that sold (half an order line's worth
of days per order line on the online-retail data), and every day since the
series's last sale before it; in Python that was close to a third of what
demand cost the stream.
"""

from libc.math cimport pow
from scipy.special.cython_special cimport betainc, gammaincc

cdef long NO_DAY = -(1 << 62)  # last_day None: nothing learned yet
# Python's x ** 2 calls libm's pow, which is not always x * x to the last bit; a
# constant exponent would let the C compiler write x * x instead.
cdef double SQUARE = 2.0


cpdef double nb_cdf(long k, double mean, double phi) noexcept:
    """P(units <= k): :func:`models.demand.nb_cdf_python` in C, the same scipy kernels
    called without Python (the surge check calls it on every big day's purchase)."""
    cdef double q
    if k < 0:
        return 0.0
    if mean <= 1e-9:
        return 1.0
    if phi <= 1.0 + 1e-6:
        return gammaincc(k + 1, mean)
    q = 1.0 / phi
    return betainc(mean * q / (1.0 - q), k + 1, q)


cdef inline void walk(double demand, double* total, double* squares, double* expected, double decay,
                      double errors, double* w, int first, long days):
    cdef double mean, weight
    cdef long i
    cdef int d = first
    for i in range(days):
        weight = w[d]
        if total[0] > 0:
            mean = demand / total[0] * weight
            squares[0] = squares[0] * errors + mean * mean
            expected[0] = expected[0] * errors + mean
        demand *= decay
        total[0] = total[0] * decay + weight
        d = d + 1 if d < 6 else 0


def zero_days(double demand, double total, double squares, double expected, double decay,
              double errors, list weights, int first, int days):
    """``days`` days without a sale from weekday ``first`` on: (total, squares, expected)."""
    cdef double w[7]
    cdef int i
    for i in range(7):
        w[i] = weights[i]
    walk(demand, &total, &squares, &expected, decay, errors, w, first, days)
    return total, squares, expected


cdef class DayLearner:
    """The numbers a series' forecaster keeps and how a day moves them (see the
    reference); its fields are declared in models/demand_days.pxd."""

    def __init__(self, double half_life_days, double spread, double mass, double units_half_life_days,
                 double lump_cap, double lump_keep, double error_half_life_days):
        self.half_life_days = half_life_days
        self.lump_cap = lump_cap
        self.lump_keep = lump_keep
        self.units_half_life_days = units_half_life_days
        self.spread = spread
        self.levels = (0.5 - mass / 2, 0.5 + mass / 2)
        self._decay = pow(0.5, 1.0 / half_life_days)
        self._slow = pow(0.5, 1.0 / units_half_life_days)
        self._errors = pow(0.5, 1.0 / error_half_life_days)
        self.lines = self.weight = self.units = self.unit_lines = self.squares = self.expected = 0.0
        self._last = NO_DAY

    @property
    def last_day(self):
        return None if self._last == NO_DAY else self._last

    @last_day.setter
    def last_day(self, value):
        self._last = NO_DAY if value is None else value

    cdef bint learned(self) noexcept:
        return self._last != NO_DAY

    cdef double _level(self) noexcept:
        if self.weight <= 0 or self.unit_lines <= 0:
            return 0.0
        return self.lines / self.weight * self.units / self.unit_lines

    @property
    def level(self):
        return self._level()

    cdef double _dispersion(self) noexcept:
        if self.expected <= 0:
            return 1.0
        cdef double phi = self.spread * self.squares / self.expected
        return phi if phi > 1.0 else 1.0

    def dispersion(self):
        """Variance over mean of a day's units (1 = Poisson), times ``spread``."""
        return self._dispersion()

    def learn_one(self, double units, long day, rhythm, lines=None):
        """Learn ``units`` sold on ``day`` in ``lines`` order lines (see the reference)."""
        counted = lines is not None
        self._learn(units, day, rhythm.weights, counted, lines if counted else 0.0)

    cdef int _learn(self, double units, long day, list weights, bint counted, double lines) except -1:
        cdef double n, weight, mean, cap, total, unit_lines, errors
        cdef long last = self._last
        if last != NO_DAY:
            if day <= last:
                raise ValueError(f"day {day} is not after the last day learned ({last})")
            if day > last + 1:
                self._learn_zeros(last + 1, min(day, last + 366), weights)
        n = lines if counted else (1.0 if units > 0 else 0.0)
        weight = weights[weekday(day)]
        total, unit_lines = self.weight, self.unit_lines
        if total > 0:
            mean = self.lines / total * self.units / unit_lines * weight if unit_lines > 0 else 0.0
            errors = self._errors
            self.squares = self.squares * errors + pow(units - mean, SQUARE)
            self.expected = self.expected * errors + mean
        self.lines = self.lines * self._decay + n
        self.weight = total * self._decay + weight
        if counted and unit_lines > 0 and units > 0:
            cap = self.lump_cap * self.units / unit_lines * n
            if units > cap:
                units = cap + self.lump_keep * (units - cap)
        self.units = self.units * self._slow + units
        self.unit_lines = unit_lines * self._slow + n
        self._last = day
        return 0

    cdef void _learn_zeros(self, long start, long end, list weights):
        cdef double w[7]
        cdef double unit_lines = self.unit_lines, slow
        cdef double demand = self.lines * (self.units / unit_lines if unit_lines > 0 else 0.0)
        cdef long days = end - start
        cdef int i
        for i in range(7):
            w[i] = weights[i]
        walk(demand, &self.weight, &self.squares, &self.expected, self._decay, self._errors, w,
             weekday(start), days)
        self.lines *= pow(self._decay, <double>days)
        slow = pow(self._slow, <double>days)
        self.units *= slow
        self.unit_lines = unit_lines * slow
