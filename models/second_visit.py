"""No second visit: has a customer seen once gone for good, given their silence?

BG/NBD (``models/churn.py``) lets a customer drop out only after a return,
so a customer seen in one session has a risk of 0, yet on a real shop's
purchase log they are the least likely to come back. Here, as in the
Pareto/NBD model, a new customer may drop out before any second visit: with
probability ``return_share`` they will come back some day, at a rate whose
gamma prior has shape ``shape`` and gives a median first-to-second gap of
``gap_days`` (the gap then follows a Lomax distribution); otherwise they
never come back. ``score_one`` is P(never coming back | no second visit
after ``silence_s``):

    risk(s) = (1 - share) / ((1 - share) + share * (scale / (scale + s)) ** shape)

It starts at ``1 - return_share`` (what the population says before any
silence) and grows towards 1 as the silence passes how soon new customers
who do come back usually do. ``due_after`` is the silence after which an
alert is worth raising: the risk reaches ``threshold`` *and* the silence is
at least the median gap (a new customer is not given up on while most of
those who return have not yet had the time to).

>>> first = SecondVisit(return_share=0.3, gap_days=7.0, threshold=0.8)
>>> day = 86400.0
>>> [round(first.score_one(d * day), 2) for d in (0, 3, 7, 30, 90)]
[0.7, 0.77, 0.82, 0.93, 0.97]
>>> round(first.due_after() / day, 2)  # the risk passes 0.8 at 5 days; the median gap is 7
7.0
>>> round(SecondVisit(return_share=0.5, gap_days=7.0, threshold=0.8).due_after() / day, 1)
21.0
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_S = 86400.0


@dataclass(frozen=True)
class SecondVisit:
    """P(a customer seen once never comes back), from the silence since their visit."""

    return_share: float = 0.3
    gap_days: float = 7.0
    shape: float = 1.0
    threshold: float = 0.8

    def __post_init__(self) -> None:
        if not 0.0 < self.return_share < 1.0:
            raise ValueError("return_share must be strictly between 0 and 1")
        if not (self.gap_days > 0.0 and self.shape > 0.0):
            raise ValueError("gap_days and shape must be positive")

    @property
    def scale_s(self) -> float:
        """The Lomax scale that puts the median gap at ``gap_days``."""
        return self.gap_days * DAY_S / (2.0 ** (1.0 / self.shape) - 1.0)

    def still_waiting(self, silence_s: float) -> float:
        """P(no second visit yet after this silence | the customer will return)."""
        scale = self.scale_s
        return (scale / (scale + max(silence_s, 0.0))) ** self.shape

    def score_one(self, silence_s: float) -> float:
        gone = 1.0 - self.return_share
        return gone / (gone + self.return_share * self.still_waiting(silence_s))

    def due_after(self) -> float:
        """The silence (s) after which a customer seen once is worth an alert."""
        gone, share = 1.0 - self.return_share, self.return_share
        target = self.threshold / (1.0 - self.threshold)
        # share * waiting(s) == gone / target
        waiting = gone / (target * share)
        crossing = 0.0 if waiting >= 1.0 else self.scale_s * (waiting ** (-1.0 / self.shape) - 1.0)
        return max(crossing, self.gap_days * DAY_S)

    def returned_by(self, silence_s: float) -> float:
        """Share of the new customers who return that have done so after this silence."""
        return 1.0 - self.still_waiting(silence_s)

