"""Marketing actions with a holdout: who gets an offer, and who is kept back.

Every action (a ``retention_offer`` or ``cart_nudge`` alert, and an ``offer``
of a campaign the shop declares) is decided per user: treat, or hold out so
that what the treated do can be compared with what they would have done
anyway. The decision is a keyed hash of the campaign and the user
(HMAC-SHA256 with ``SHOPSTREAM_HOLDOUT_KEY``): a user falls in the holdout
when the hash, read as a number in [0, 1), is below
``SHOPSTREAM_HOLDOUT_SHARE``. Same user, same campaign, same decision, on any
worker, after any restart and in replay; another campaign draws again. The
key keeps the groups unguessable from outside (set your own in production).

Both decisions go on the ``actions`` topic; a held-out record has
``"held_out": true`` and is not meant to reach the customer. The campaign of
an alert's action is its kind (``retention_offer``, ``cart_nudge``); the
shop declares ``offer`` campaigns in a JSON file (``SHOPSTREAM_CAMPAIGNS``)::

    [{"campaign": "spring-coupon", "start": "2024-03-01", "end": "2024-03-15",
      "segments": [2, 3], "cost": 2.5, "message": "10 % off your next order"}]

``start`` and ``end`` are event times (epoch seconds or ISO-8601);
``segments`` (optional) limits the offer to users in those segments;
``cost`` (optional) is what one treated offer costs; ``budget_per_day``
(optional) the treated offers a day, targeted by predicted uplift
(:mod:`stream.targeting`; default ``SHOPSTREAM_OFFER_BUDGET_PER_DAY``, 0: no
budget, every eligible user is decided). A user is decided once per
campaign, when a session of theirs closes inside the campaign's dates.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson

from models.profile import UserProfile
from stream.events import HISTORY_MIN_TS, InvalidEvent, parse_ts
from stream.outputs import Alert

ALERT_KINDS = ("retention_offer", "cart_nudge")
OFFER = "offer"
DEFAULT_KEY = "shopstream-holdout"


class CampaignError(ValueError):
    """A campaigns file that cannot be used (one-line message)."""


def holdout_draw(user_id: str, campaign: str, key: str = "") -> float:
    """The user's draw for the campaign, uniform in [0, 1) over users."""
    digest = hmac.new((key or DEFAULT_KEY).encode(), f"{campaign}\x1f{user_id}".encode(),
                      hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def held_out(user_id: str, campaign: str, share: float, key: str = "") -> bool:
    """True when the user is in the campaign's holdout.

    >>> held_out("u1", "spring", 0.0), held_out("u1", "spring", 1.0)
    (False, True)
    >>> held_out("u1", "spring", 0.5) == held_out("u1", "spring", 0.5)
    True
    """
    return holdout_draw(user_id, campaign, key) < share


@dataclass(frozen=True)
class Campaign:
    campaign: str
    start: float
    end: float
    segments: tuple[int, ...] | None = None
    cost: float | None = None
    message: str | None = None
    budget_per_day: int | None = None  # treated offers a day (stream/targeting.py); None: the setting's

    def active(self, ts: float) -> bool:
        return self.start <= ts < self.end

    def eligible(self, profile: UserProfile) -> bool:
        return self.segments is None or profile.segment in self.segments


def load_campaigns(path: str | Path) -> list[Campaign]:
    """The campaigns a shop declares (see the module's docstring)."""
    try:
        doc = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise CampaignError(f"cannot read campaigns file {path}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError:
        raise CampaignError(f"campaigns file {path} is not JSON") from None
    if not isinstance(doc, list):
        raise CampaignError(f"campaigns file {path} must hold a JSON list of campaigns")
    out: list[Campaign] = []
    for i, c in enumerate(doc, 1):
        where = f"campaigns file {path}, campaign {i}"
        if not isinstance(c, dict) or not isinstance(c.get("campaign"), str) or not c["campaign"]:
            raise CampaignError(f"{where}: needs a non-empty 'campaign' name")
        if c["campaign"] in ALERT_KINDS or any(o.campaign == c["campaign"] for o in out):
            raise CampaignError(f"{where}: the name {c['campaign']!r} is taken")
        try:
            start, end = parse_ts(c["start"], HISTORY_MIN_TS), parse_ts(c["end"], HISTORY_MIN_TS)
        except KeyError as exc:
            raise CampaignError(f"{where}: needs {exc.args[0]!r}") from None
        except InvalidEvent as exc:
            raise CampaignError(f"{where}: {exc.reason}") from None
        if end <= start:
            raise CampaignError(f"{where}: 'end' must come after 'start'")
        segments = c.get("segments")
        if segments is not None and (not isinstance(segments, list)
                                     or not all(isinstance(s, int) for s in segments)):
            raise CampaignError(f"{where}: 'segments' must be a list of segment numbers")
        cost = c.get("cost")
        if cost is not None and (not isinstance(cost, (int, float)) or not math.isfinite(cost)
                                 or cost < 0):
            raise CampaignError(f"{where}: 'cost' must be a number >= 0")
        budget = c.get("budget_per_day")
        if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 0):
            raise CampaignError(f"{where}: 'budget_per_day' must be a whole number >= 0")
        out.append(Campaign(c["campaign"], start, end,
                            None if segments is None else tuple(segments),
                            None if cost is None else float(cost), c.get("message"), budget))
    return out


@dataclass(slots=True)
class Action:
    """One decision: treat the user, or hold them out (published on ``actions``)."""

    kind: str
    campaign: str
    user_id: str
    ts: float
    held_out: bool
    holdout_share: float
    key: str  # what makes the id unique: the alert's, or the campaign and user
    score: float | None = None
    reason_id: str | None = None  # the alert that led to it
    segment: int | None = None
    cost: float | None = None
    message: str | None = None
    features: dict[str, float] = field(default_factory=dict)
    # Declared offers under a budget (stream/targeting.py): "uplift" (predicted
    # uplift over the threshold) or "explore" (at random); None: no targeting.
    policy: str | None = None

    @property
    def action_id(self) -> str:
        return f"action:{self.key}"

    @property
    def treated(self) -> bool:
        return not self.held_out

    def to_dict(self) -> dict[str, Any]:
        return {
            "action_id": self.action_id,
            "kind": self.kind,
            "campaign": self.campaign,
            "user_id": self.user_id,
            "ts": self.ts,
            "treated": self.treated,
            "held_out": self.held_out,
            "holdout_share": self.holdout_share,
            "score": None if self.score is None else round(self.score, 6),
            "reason_id": self.reason_id,
            "segment": self.segment,
            "cost": self.cost,
            "message": self.message,
            "features": {k: round(v, 6) for k, v in self.features.items()},
            "policy": self.policy,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


class Actions:
    """Turns alerts and closed sessions into decisions with a holdout."""

    def __init__(self, share: float, key: str = "", campaigns: list[Campaign] | None = None,
                 budget_per_day: int = 0) -> None:
        self.share = share
        self.key = key
        self.campaigns = campaigns or []
        self.budgets = {c.campaign: budget_per_day if c.budget_per_day is None else c.budget_per_day
                        for c in self.campaigns}

    def _decide(self, kind: str, campaign: str, profile: UserProfile, ts: float, key: str,
                **extra: Any) -> Action:
        return Action(kind, campaign, profile.user_id, ts,
                      held_out(profile.user_id, campaign, self.share, self.key), self.share, key,
                      segment=profile.segment, features=profile.features.values(ts), **extra)

    def from_alerts(self, alerts: list[Alert], profiles: dict[str, UserProfile]) -> list[Action]:
        """An action for every offer or nudge alert; the alert is marked with its decision."""
        out = []
        for alert in alerts:
            if alert.kind not in ALERT_KINDS or alert.held_out is not None:
                continue
            action = self._decide(alert.kind, alert.kind, profiles[alert.user_id], alert.ts,
                                  alert.alert_id, score=alert.score, reason_id=alert.alert_id)
            alert.held_out = action.held_out
            out.append(action)
        return out

    def offers(self, profile: UserProfile, ts: float, target: Target | None = None) -> list[Action]:
        """Decisions for the declared campaigns running at ``ts`` that this user
        has not been decided for yet (a closed session of theirs). ``target``:
        whether to decide the user now, with the score and the reason."""
        out = []
        for c in self.campaigns:
            if c.campaign in profile.offers or not c.active(ts) or not c.eligible(profile):
                continue
            score, policy = None, None
            if target is not None:
                chosen, score, policy = target(c.campaign, profile, ts)
                if not chosen:
                    continue
            profile.offers[c.campaign] = ts
            out.append(self._decide(OFFER, c.campaign, profile, ts, f"{OFFER}:{c.campaign}:{profile.user_id}",
                                    cost=c.cost, message=c.message, score=score, policy=policy))
        return out


# (campaign, profile, ts) -> (decide now?, predicted uplift or None, "uplift" / "explore" / None)
Target = Callable[[str, UserProfile, float], tuple[bool, "float | None", "str | None"]]
