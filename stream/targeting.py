"""Who gets a declared campaign's offer: the users with the highest predicted
uplift, under a daily budget; and how the uplift model learns online.

Ingest scores each eligible user at the close of a session with the uplift
model of the current snapshot (``models/uplift.py``, one model for every
declared offer: they are taken to be alike, e.g. coupons). With
``SHOPSTREAM_OFFER_BUDGET_PER_DAY`` > 0 a user is decided (treated, or held
out by the keyed hash of :mod:`stream.actions`) only when targeted:

- their predicted uplift is at least the campaign's threshold, which the
  learner takes at each day's close from that day's candidates so that the
  next day's treated offers come to about the budget (the ``k``-th best
  score, ``k`` = budget / (1 - holdout share) less the explorers); or
- they fall in the explore share (``SHOPSTREAM_OFFER_EXPLORE``, a keyed hash
  of its own): offers at random, so that the model keeps learning about
  users it does not rank first. A campaign's first day, before any
  threshold, gives offers to explorers only.

Users not targeted are not decided and may be at a later session. The
holdout is drawn among the targeted as among everyone: the report compares
like with like and, given the features, treatment stays random, so what the
model learns is unbiased. The threshold aims at the budget (a day's
candidates set the next day's); the budget itself is a cap: once a day's
treated offers reach it (``offers-sent``, read with the batch and written by
its commit), nobody more is decided that day, in either group. Workers that
decide at the same moment may pass it by the offers of one batch each.
Without a budget every eligible user is decided, as before, and the model
learns from them all.

The learner (:class:`OfferLearner`, part of :class:`stream.learner.Learner`)
holds each decision's features until its window
(``SHOPSTREAM_OFFER_WINDOW_DAYS``) has passed on event time, marks the
decisions ingest reports converted (a purchase in the window), and then
learns ``(features, treated, converted)``.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any

from models.uplift import UpliftModel
from stream.actions import holdout_draw

DECISION, CONVERTED, CANDIDATE = "decision", "converted", "candidate"
DAY_S = 86400.0


def sent_field(campaign: str, day: int) -> str:
    """The field of a campaign's treated offers of a day in the ``offers-sent`` totals."""
    return f"{campaign}\t{day}"


def uplift_features(x: dict[str, float]) -> dict[str, float]:
    """A user's features on the scale the uplift model wants (of order 1):
    counts, money and days as log(1 + value).

    >>> uplift_features({"revenue": math.e - 1, "recency_days": 0.0})
    {'revenue': 1.0, 'recency_days': 0.0}
    """
    return {k: math.copysign(math.log1p(abs(v)), v) for k, v in x.items()}


def explores(user_id: str, campaign: str, share: float, key: str = "") -> bool:
    """True when the user is in the campaign's explore share (independent of the holdout)."""
    return share > 0 and holdout_draw(user_id, f"explore\x1f{campaign}", key) < share


@dataclass
class OfferLearner:
    """The uplift model and the campaigns' thresholds, learnt from the
    decisions, conversions and candidates ingest reports."""

    window_s: float = 7 * DAY_S
    budget: int = 0
    budgets: dict[str, int] = field(default_factory=dict)  # campaign -> its own budget
    holdout_share: float = 0.1
    explore: float = 0.1
    model: UpliftModel = field(default_factory=UpliftModel)
    thresholds: dict[str, tuple[float, float]] = field(default_factory=dict)  # see threshold()
    # action_id -> [ts, x, treated, converted]; due: (ts + window, action_id)
    pending: dict[str, list] = field(default_factory=dict)
    due: list[tuple[float, str]] = field(default_factory=list)
    day: int | None = None
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # campaign -> user -> today's best
    learnt: int = 0

    @classmethod
    def for_settings(cls, settings: Any) -> "OfferLearner":
        return cls().configure(settings)

    def configure(self, settings: Any) -> "OfferLearner":
        """Take the window, budgets and shares from the settings (also after a
        restart: the learnt state is kept, the settings are today's)."""
        from stream.actions import load_campaigns

        declared = load_campaigns(settings.campaigns) if settings.campaigns else []
        self.window_s = settings.offer_window_days * DAY_S
        self.budget = settings.offer_budget_per_day
        self.budgets = {c.campaign: c.budget_per_day for c in declared if c.budget_per_day is not None}
        self.holdout_share, self.explore = settings.holdout_share, settings.offer_explore
        return self

    def add(self, kind: str, user_id: str, action_id: str, ts: float, x: dict[str, float] | None,
            score: float | None, campaign: str | None, treated: bool | None) -> None:
        if kind == DECISION and x is not None and action_id not in self.pending:
            self.pending[action_id] = [ts, x, bool(treated), False]
            heapq.heappush(self.due, (ts + self.window_s, action_id))
        elif kind == CONVERTED and action_id in self.pending:
            self.pending[action_id][3] = True
        elif kind == CANDIDATE and campaign is not None and score is not None:
            day = int(ts // DAY_S)
            if self.day is None or day > self.day:
                self._close_day()
                self.day = day
            today = self.scores.setdefault(campaign, {})
            today[user_id] = max(score, today.get(user_id, -math.inf))

    def resolve(self, watermark: float) -> int:
        """Learn the decisions whose window has passed; how many."""
        n = 0
        while self.due and self.due[0][0] <= watermark:
            _, action_id = heapq.heappop(self.due)
            entry = self.pending.pop(action_id, None)
            if entry is not None:
                _, x, treated, converted = entry
                self.model.learn_one(x, treated, converted)
                n += 1
        self.learnt += n
        return n

    def _close_day(self) -> None:
        """Tomorrow's thresholds from today's candidates and the budget."""
        for campaign, users in self.scores.items():
            budget = self.budgets.get(campaign, self.budget)
            if budget > 0:
                self.thresholds[campaign] = threshold(list(users.values()), budget,
                                                      self.holdout_share, self.explore)
        self.scores = {}


def threshold(scores: list[float], budget: int, holdout_share: float, explore: float
              ) -> tuple[float, float]:
    """The score from which users are targeted so that, on a day like the one
    that gave ``scores``, about ``budget`` are treated; and the share of the
    users whose score equals it to target (users alike score alike: a tie is
    split by a keyed hash of its own).

    >>> threshold([0.5, 0.4, 0.3, 0.2, 0.1], budget=2, holdout_share=0.0, explore=0.0)
    (0.4, 1.0)
    >>> threshold([0.5, 0.4, 0.4, 0.4, 0.1], budget=3, holdout_share=0.0, explore=0.0)
    (0.4, 0.6667)
    >>> threshold([0.5, 0.4], budget=10, holdout_share=0.0, explore=0.0)
    (-inf, 1.0)
    """
    if not scores:
        return math.inf, 1.0
    k = int(round(budget / (1 - holdout_share) - explore * len(scores)))
    if k <= 0:
        return math.inf, 1.0
    if k >= len(scores):
        return -math.inf, 1.0
    ranked = sorted(scores, reverse=True)
    limit = ranked[k - 1]
    above = sum(s > limit for s in ranked)
    tied = sum(s == limit for s in ranked)
    return limit, round((k - above) / tied, 4)


def targeted(user_id: str, campaign: str, score: float, limit: tuple[float, float], key: str = "") -> bool:
    """Whether a user scored ``score`` is over the campaign's threshold."""
    t, tie_share = limit
    return score > t or (score == t and holdout_draw(user_id, f"tie\x1f{campaign}", key) < tie_share)
