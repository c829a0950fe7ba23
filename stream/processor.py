"""The per-batch logic: the one thing the Faust agent, replay and tests call.

``Processor.handle(messages, publish)`` decodes a batch, runs it against the
state, hands the outputs to ``publish`` and commits the state with the
batch's offsets in one transaction. Outputs go out before the commit: a crash
between the two repeats outputs (same ids) but never loses them, and a batch
whose offsets are already applied is skipped, so state changes exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Awaitable, Callable, Sequence

from models.cooccurrence import Ranked, Recommendation
from models.fraud import purchase_features
from models.profile import SESSION_GAP_S, UserProfile
from stream.clock import EventClock
from stream.config import Settings
from stream.events import Event, InvalidEvent, decode
from stream.learner import EXAMPLE, FORGET, FRAUD, PURCHASE, USER, ModelRow, UserModels
from stream import campaigns
from stream.actions import OFFER, Action, Actions, held_out, load_campaigns
from stream.alerts import Alerts
from stream.demand import Forecast
from stream.outputs import Alert, DeadLetter, Message, SegmentChange, UserRecommendations
from stream.privacy import pseudonymiser
from stream.state import BatchView, State, TopicPartition, new_profile, session_id
from stream.targeting import (CANDIDATE, CONVERTED, DECISION, explores, sent_field, targeted,
                              uplift_features)
from stream.inventory import INVENTORY, StockReading, decode_reading
from stream.text_events import MESSAGES, REVIEWS, TextEvent, decode_text
from stream.voice import ScoredText, ServiceRecord
from stream.voice_batch import Voice

log = logging.getLogger(__name__)

EventFilter = Callable[[Event], bool]
first = itemgetter(0)
# A user gives the propensity model at most one training example per this
# many seconds of event time: a burst of views is one moment, not fifty.
EXAMPLE_GAP_S = 300.0


@dataclass(slots=True)
class Prediction:
    """What a user was recommended just before one of their events."""

    event: Event
    items: list[str]  # best first
    scores: list[float]  # of the items; 0 for popularity fallback
    in_session: bool  # the event continues a session (a next-item prediction point)
    seconds: float = 0.0  # spent ranking the items (prediction speed, as session-rec times it)


@dataclass
class BatchResult:
    recommendations: list[UserRecommendations] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    processed: int = 0
    already_applied: int = 0
    duplicates: int = 0
    predictions: list[Prediction] = field(default_factory=list)
    model_rows: list[ModelRow] = field(default_factory=list)
    segment_changes: list[SegmentChange] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    # The campaign report at each day's close the batch's watermark passed
    # (stream/campaigns.py summary), for the campaign-results topic.
    campaign_results: list[dict] = field(default_factory=list)
    # (event, {score name: value}) per event, when collect_scores is on
    scores: list[tuple[Event, dict[str, float]]] = field(default_factory=list)
    demand: list[Forecast] = field(default_factory=list)  # series whose day closed (live only)
    service: list[ServiceRecord] = field(default_factory=list)  # triaged messages (stream/voice_batch.py)
    # (review or message, its scores before it was learnt) per text, when collect_scores is on
    text_scores: list[tuple[TextEvent, ScoredText]] = field(default_factory=list)
    view: BatchView | None = None

    @property
    def received(self) -> int:
        return self.processed + self.already_applied + self.duplicates + len(self.dead_letters)


class Processor:
    """Runs batches of input messages against a :class:`~stream.state.State`.

    ``evaluate`` selects events to predict for before learning them
    (prequential evaluation in replay); ``learn`` selects the events that
    models learn from (all by default; replay's frozen mode excludes the
    evaluated ones, while their users' sessions still move on).
    """

    def __init__(
        self,
        state: State,
        settings: Settings | None = None,
        evaluate: EventFilter | None = None,
        learn: EventFilter | None = None,
        publish_recommendations: bool = True,
        models: UserModels | None = None,
        collect_scores: bool = False,
        clock: EventClock | None = None,
    ) -> None:
        self.state = state
        self.settings = settings or state.settings
        self.evaluate = evaluate
        self.learn = learn
        self.publish_recommendations = publish_recommendations
        self.models = models or UserModels()
        self.collect_scores = collect_scores
        self.clock = clock
        # A batch and a sweep of the same worker must not interleave their
        # read-modify-write of the same users.
        self._lock = asyncio.Lock()
        self.alerts = Alerts(self.settings)
        s = self.settings
        self.actions = Actions(s.holdout_share, s.holdout_key,
                               load_campaigns(s.campaigns) if s.campaigns else [], s.offer_budget_per_day)
        self.offer_window_s = s.offer_window_days * campaigns.DAY_S
        self.pseudonym = pseudonymiser(self.settings.user_key)
        topics = self.settings.topics
        self._roles = {topics.views: "views", topics.clicks: "clicks", topics.purchases: "purchases",
                       topics.reviews: REVIEWS, topics.messages: MESSAGES, topics.inventory: INVENTORY}
        self.voice = Voice.for_settings(self.settings)

    def decode(
        self, messages: Sequence[Message]
    ) -> tuple[list[tuple[Event, Message]], list[DeadLetter]]:
        good: list[tuple[Event, Message]] = []
        bad: list[DeadLetter] = []
        limit = self.settings.max_message_bytes
        for message in messages:
            role = self._roles.get(message.topic)
            try:
                if role in (REVIEWS, MESSAGES):  # what customers write: stream/voice_batch.py
                    good.append((decode_text(message.value, role, limit), message))  # type: ignore[arg-type]
                    continue
                if role == INVENTORY:  # stock readings: stream/inventory.py
                    good.append((decode_reading(message.value, limit), message))  # type: ignore[arg-type]
                    continue
                good.append((decode(message.value, role, limit), message))
            except InvalidEvent as exc:
                bad.append(DeadLetter(message, exc.reason))
            except Exception as exc:  # a decoder bug must not stop the stream
                bad.append(DeadLetter(message, f"undecodable: {type(exc).__name__}: {exc}"[:300]))
        return good, bad

    async def handle(
        self,
        messages: Sequence[Message],
        publish: Callable[[BatchResult], Awaitable[None]] | None = None,
        events: Sequence[Event | None] | None = None,
    ) -> BatchResult:
        """Process, publish, commit; redo the batch if another worker committed
        the same partitions meanwhile. ``events`` gives messages already
        decoded (replay of validated files); a None there is decoded here."""
        if events is None:
            decoded, dead = self.decode(messages)
        else:
            decoded, dead = [], []
            for message, event in zip(messages, events, strict=True):
                if event is None:
                    good, bad = self.decode([message])
                    decoded += good
                    dead += bad
                else:
                    decoded.append((event, message))
        if self.settings.user_key:  # nothing downstream ever sees a shop's own user id
            for event, _ in decoded:
                if not isinstance(event, StockReading):  # an item's stock: no user
                    event.user_id = self.pseudonym(event.user_id)
        return await self._run(decoded, dead, None, publish)

    async def forget(self, user_id: str) -> tuple[dict[str, int], ModelRow]:
        """Erase one user (by the shop's id): what was erased, and the row that
        tells the learner to drop what it holds of them."""
        pseudonym = self.pseudonym(user_id)
        async with self._lock:
            erased = await self.state.forget(pseudonym)
            erased.update(await self.state.forget_voice(pseudonym))
        return erased, ModelRow(FORGET, pseudonym, f"forget:{pseudonym}", 0.0)

    async def sweep(
        self,
        partitions: Sequence[TopicPartition],
        publish: Callable[[BatchResult], Awaitable[None]] | None = None,
    ) -> BatchResult:
        """Close quiet sessions and raise churn checks due in these partitions
        without any new event: what keeps alerts coming when the stream is idle."""
        return await self._run([], [], sorted(partitions), publish)

    async def _run(
        self,
        decoded: Sequence[tuple[Event, Message]],
        dead: Sequence[DeadLetter],
        partitions: Sequence[TopicPartition] | None,
        publish: Callable[[BatchResult], Awaitable[None]] | None,
    ) -> BatchResult:
        async with self._lock:
            while True:
                result = await self.process(decoded, dead, partitions)
                if publish is not None:
                    await publish(result)
                assert result.view is not None
                if await self.state.commit(result.view):
                    return result
                log.info("offsets (a rebalance) or a document shared with other workers moved "
                         "under this batch; processing it again")

    async def process(
        self,
        decoded: Sequence[tuple[Event, Message]],
        dead: Sequence[DeadLetter] = (),
        partitions: Sequence[TopicPartition] | None = None,
    ) -> BatchResult:
        """Run one decoded batch against a fresh view of the state (no commit).
        ``partitions``: those to sweep when there are no events (``sweep``)."""
        if partitions is None:
            partitions = sorted({(m.topic, m.partition) for _, m in decoded})
        texts = [(e, m) for e, m in decoded if not isinstance(e, Event)]
        readings: list = []
        if texts:  # reviews, messages and stock readings: outside the event-time clock
            decoded = [(e, m) for e, m in decoded if isinstance(e, Event)]
            readings = [(r, m) for r, m in texts if isinstance(r, StockReading)]
            if readings:
                texts = [(t, m) for t, m in texts if not isinstance(t, StockReading)]
        watermark = self._watermark(decoded)
        view = await self.state.load(
            [e for e, _ in decoded], partitions, close_before=watermark - SESSION_GAP_S,
            check_until=watermark, stock_items=[r.item_id for r, _ in readings],
        )
        result = BatchResult(dead_letters=list(dead), view=view)
        if not decoded:
            # A sweep commits only if no batch moved these partitions meanwhile.
            view.new_offsets.update(view.offsets)
        if readings:  # before the batch's purchases: those after a reading count against it
            self._apply_readings(readings, view, result)
        last_event: dict[str, Event] = {}
        for event, message in decoded:
            tp = (message.topic, message.partition)
            if message.offset <= view.offsets.get(tp, -1):
                result.already_applied += 1
                continue
            if message.offset > view.new_offsets.get(tp, -1):
                view.new_offsets[tp] = message.offset
            try:
                applied = self._apply(event, view, result)
            except Exception as exc:  # one bad event must not stop the stream
                log.exception("processing event %s failed", event.event_id)
                result.dead_letters.append(
                    DeadLetter(message, f"processing failed: {type(exc).__name__}: {exc}"[:300])
                )
                continue
            if applied:
                result.processed += 1
                last_event[event.user_id] = event
                last_seen = view.profiles[event.user_id].last_seen
                view.opened[message.partition, event.user_id] = last_seen or event.ts
            else:
                result.duplicates += 1
        if texts:
            await self._apply_texts(texts, view, result)
        self._close_quiet_sessions(view, last_event, watermark, result)
        self._check_churn(view, last_event, watermark, result)
        await self._close_day(view, watermark, result)
        if view.demand is not None:
            result.demand = view.demand.close(watermark, forecast=self.publish_recommendations)
            if view.demand.alerts:  # stock_risk
                result.alerts += view.demand.take_alerts()
        if self.publish_recommendations:  # a live consumer reads these; replay exports its own
            self._refresh_propensity(view, last_event)
            self._recommend_after(view, last_event, result)
        return result

    @staticmethod
    def _apply_readings(readings: list, view: BatchView, result: BatchResult) -> None:
        """Stock readings (``inventory`` topic) into the demand book; without
        demand (off, or on a Redis Cluster) they are read and dropped."""
        for reading, message in readings:
            tp = (message.topic, message.partition)
            if message.offset <= view.offsets.get(tp, -1):
                result.already_applied += 1
                continue
            if message.offset > view.new_offsets.get(tp, -1):
                view.new_offsets[tp] = message.offset
            if view.demand is not None:
                view.demand.read_stock(reading.item_id, reading.units, reading.ts, reading.event_id)
            result.processed += 1

    async def _apply_texts(self, texts: list, view: BatchView, result: BatchResult) -> None:
        users = list(dict.fromkeys(t.user_id for t, _ in texts))
        items = list(dict.fromkeys(t.item_id for t, _ in texts if hasattr(t, "item_id")))
        view.voice = await self.state.load_voice(users, items)
        applied, repeats = self.voice.apply(texts, view, view.voice, result.alerts, result.service,
                                            self.alerts, self.models,
                                            result.text_scores if self.collect_scores else None)
        result.processed += applied
        result.duplicates += repeats

    def _watermark(self, decoded: Sequence[tuple[Event, Message]]) -> float:
        """How far event time has come: sessions and churn checks before it are due.
        Without a clock (replay: one stream in time order) the batch's latest time."""
        if self.clock is None:
            return max((e.ts for e, _ in decoded), default=0.0)
        for event, message in decoded:
            self.clock.observe((message.topic, message.partition), event.ts)
        watermark = self.clock.watermark()
        return float("-inf") if watermark is None else watermark

    def _apply(self, event: Event, view: BatchView, result: BatchResult) -> bool:
        profile = view.profiles.get(event.user_id)
        if profile is None:
            profile = view.profiles[event.user_id] = new_profile(self.settings, event.user_id)
        if event.event_id in profile.seen_event_ids:
            return False
        result.alerts += self.alerts.on_return(profile, event, self.models)
        fraud_x = None
        if event.type == "purchase":
            amount = (event.price or 0.0) * event.quantity
            fraud_x = purchase_features(profile, event.item_id, event.ts, amount, event.category,
                                        event.order_id, event.attrs)
        new_session = profile.is_new_session(event.ts, event.session_id)
        if self.evaluate is not None and self.evaluate(event):
            # A session's first event is no next-item point: nothing to rank from.
            started = time.perf_counter()
            items, scores = ([], []) if new_session else self.rank(view, profile)
            result.predictions.append(
                Prediction(event, items, scores, not new_session, time.perf_counter() - started)
            )
        session = [] if new_session else profile.session_items()
        learning = self.learn is None or self.learn(event)
        if new_session and profile.last_seen is not None and profile.closed_at != profile.last_seen:
            quiet = event.ts - profile.last_seen >= SESSION_GAP_S
            self._session_closed(profile, event.event_id, event.ts, learning, result, quiet)
        profile.learn_one(
            event.type,
            event.item_id,
            event.ts,
            session_id=event.session_id,
            price=event.price,
            quantity=event.quantity,
            event_id=event.event_id,
            category=event.category,
            order_id=event.order_id,
        )
        view.dirty_users.add(event.user_id)
        if profile.exposures:
            amount = (event.price or 0.0) * event.quantity if event.type == "purchase" else None
            for c in campaigns.join(profile, event.ts, new_session, amount, self.offer_window_s,
                                    view.campaign_counts):
                if c.kind == OFFER:  # what the uplift learner waits for
                    result.model_rows.append(ModelRow(CONVERTED, event.user_id, c.action_id, event.ts,
                                                      campaign=c.campaign))
        self._score_event(event, profile, learning, result, fraud_x)
        if learning:
            pairs, occurrence = view.cooccurrence.learn_one(
                session, event.item_id, event.type, event.ts, view.pairs if view.journal else None
            )
            increment = view.popularity.learn_one(event.item_id, event.ts)
            if view.demand is not None:
                if event.type == "purchase":
                    surges = view.demand.add(event)
                    if surges:
                        result.alerts += surges
                else:
                    view.demand.add_signal(event)
            view.touched_items.update(map(first, pairs))
            if view.journal:
                view.occurrences.append((event.item_id, occurrence))
                view.popular.append((event.item_id, increment))
            if self.settings.neighbour_weight > 0:
                self._learn_session(view, profile, session)
        return True

    @staticmethod
    def _learn_session(view: BatchView, profile: UserProfile, before: list[str]) -> None:
        """The user's session as it now is, for session neighbours."""
        sid = session_id(profile)
        ts = profile.last_seen or 0.0
        items = profile.session_items()
        if view.session_neighbours.learn_one(sid, items, ts, before) and view.journal:
            view.session_docs[sid] = view.session_neighbours.items(sid)
            view.session_touches.append((items[-1], sid, ts))

    @staticmethod
    def _sweep_candidates(
        view: BatchView, active: dict[str, Event]
    ) -> list[tuple[int, str, UserProfile]]:
        """(partition, user, profile) of everyone a sweep looks at: the users
        loaded as due, and those of this batch with their state after it, so
        that what a sweep finds does not depend on where batches begin and end."""
        candidates = [(p, u, view.profiles[u]) for p, u in view.opened]
        candidates += [(p, u, profile) for u, (p, profile) in view.due.items() if u not in active]
        return candidates

    def _close_quiet_sessions(
        self, view: BatchView, active: dict[str, Event], watermark: float, result: BatchResult
    ) -> None:
        """Close the sessions of users silent for longer than a session gap, as
        of the batch's event time: users who never come back are learnt too."""
        cutoff = watermark - SESSION_GAP_S
        for partition, user_id, profile in self._sweep_candidates(view, active):
            last_seen = profile.last_seen
            if last_seen is None or last_seen >= cutoff:
                continue
            # Closed already, but back in the index: an event older than the
            # user's latest, arriving after the close, re-enters its last_seen.
            # It leaves the index all the same, or it would be loaded every batch.
            if profile.closed_at != last_seen:
                close_id = f"close:{user_id}:{last_seen!r}"
                self._session_closed(
                    profile, close_id, last_seen + SESSION_GAP_S, self.learn is None, result, quiet=True
                )
                view.profiles.setdefault(user_id, profile)
                view.dirty_users.add(user_id)
            view.closed.add((partition, user_id))

    def _session_closed(
        self, profile: UserProfile, event_id: str, ts: float, learning: bool, result: BatchResult,
        quiet: bool = False,
    ) -> None:
        """A closed session's final features train the segments and place the user.
        Called when the user's next session opens, or by the sweep if it never
        does (``closed_at`` keeps the two from closing one session twice).
        ``quiet``: the session ended in a session gap of silence."""
        models = self.models
        profile.closed_at = profile.last_seen
        x = profile.features.values(profile.last_seen or ts)
        if quiet:
            nudges = self.alerts.cart_nudge(profile, x, models)
            if nudges:
                result.alerts += nudges
                self._act(profile, self.actions.from_alerts(nudges, {profile.user_id: profile}), result)
        if learning:
            result.model_rows.append(ModelRow(USER, profile.user_id, event_id, ts, x))
        segment = models.segments.assign(x, profile.segment)
        if segment is not None and segment != profile.segment:
            result.segment_changes.append(
                SegmentChange(profile.user_id, event_id, ts, segment, profile.segment,
                              models.segment_name(segment))
            )
            profile.segment = segment
        if self.actions.campaigns:
            # A quiet session is decided at the end of its gap, as the sweep
            # would have: the decision's time does not depend on which came first.
            at = (profile.last_seen or ts) + SESSION_GAP_S if quiet else ts
            rows = result.model_rows
            assert result.view is not None
            target = self._targeter(result.view, rows) if any(self.actions.budgets.values()) else None
            decided = self.actions.offers(profile, at, target)
            for a in decided:
                x = uplift_features(a.features)
                if a.score is None and self.models.uplift is not None and self.models.uplift.learnt:
                    a.score = self.models.uplift.predict_one(x)
                rows.append(ModelRow(DECISION, a.user_id, a.action_id, a.ts, x, a.score,
                                     campaign=a.campaign, treated=a.treated))
            self._act(profile, decided, result)

    def _targeter(self, view: BatchView, rows: list[ModelRow]):  # type: ignore[no-untyped-def]
        """Whom to decide now under the budget (stream/targeting.py); each
        user scored is a candidate row for the learner's next threshold.
        Once a day's treated offers reach the budget, nobody more is decided
        that day (neither group: they stay alike)."""
        s, models, budgets = self.settings, self.models, self.actions.budgets

        def target(campaign: str, profile: UserProfile, ts: float) -> tuple[bool, float | None, str | None]:
            budget = budgets[campaign]
            if not budget:
                return True, None, None
            model = models.uplift
            score = None
            if model is not None and model.learnt:
                score = model.predict_one(uplift_features(profile.features.values(ts)))
                rows.append(ModelRow(CANDIDATE, profile.user_id, f"candidate:{campaign}:{profile.user_id}",
                                     ts, p=score, campaign=campaign))
            if explores(profile.user_id, campaign, s.offer_explore, s.holdout_key):
                policy = "explore"
            else:
                limit = models.offer_thresholds.get(campaign)
                if score is None or limit is None or not targeted(profile.user_id, campaign, score,
                                                                   limit, s.holdout_key):
                    return False, score, None
                policy = "uplift"
            day = sent_field(campaign, campaigns.day_of(ts))
            if view.offers_sent.get(day, 0) + view.offers_added.get(day, 0) >= budget:
                return False, score, None
            if not held_out(profile.user_id, campaign, s.holdout_share, s.holdout_key):
                view.offers_added[day] = view.offers_added.get(day, 0) + 1
            return True, score, policy
        return target

    def _act(self, profile: UserProfile, actions: list[Action], result: BatchResult) -> None:
        """Decisions taken: published, and their outcome windows opened at once,
        so that the user's next events count whatever batch they fall in."""
        assert result.view is not None
        counts = result.view.campaign_counts
        for action in actions:
            campaigns.record(profile, action.kind, action.campaign, action.ts, action.treated,
                             action.action_id, counts)
        result.actions += actions

    async def _close_day(self, view: BatchView, watermark: float, result: BatchResult) -> None:
        """At the first batch whose event-time watermark has passed a day's
        end, the campaign report as it stands, for ``campaign-results``."""
        if watermark == float("-inf") or watermark <= 0:
            return
        today = campaigns.day_of(watermark)
        if view.campaign_day is None:
            view.new_campaign_day = today - 1  # the stream starts here: no day to close yet
        elif today - 1 > view.campaign_day:
            view.new_campaign_day = closed = today - 1
            counts = await self.state.campaign_counts()
            if counts:
                rows = campaigns.report(counts, (closed + 1) * campaigns.DAY_S,
                                        self.settings.offer_window_days, self.campaign_costs)
                result.campaign_results.append(campaigns.summary(rows, closed))

    @property
    def campaign_costs(self) -> dict[str, float]:
        return {c.campaign: c.cost for c in self.actions.campaigns if c.cost is not None}

    def _score_event(
        self, event: Event, profile: UserProfile, learning: bool, result: BatchResult,
        fraud_x: dict[str, float] | None = None,
    ) -> None:
        """Propensity (or, on a purchase, the fraud score) from the current model
        snapshot, and the rows the learner trains from. Features and scores are
        computed only where something needs them: they are the costly part of
        an event."""
        uid, eid, ts = event.user_id, event.event_id, event.ts
        rows = result.model_rows if learning else []
        scores: dict[str, float] = {}
        if event.type == "purchase":
            rows.append(ModelRow(PURCHASE, uid, eid, ts))
            if fraud_x is not None:
                parts = self.models.fraud.explain_one(fraud_x)
                scores["fraud_score"] = parts["score"]
                rows.append(ModelRow(FRAUD, uid, eid, ts, fraud_x, parts["score"], event.order_id,
                                     parts["anomaly"]))
                result.alerts += self.alerts.fraud(event, profile, fraud_x, parts["score"], self.models)
        else:
            last = profile.last_example_ts
            example = last is None or ts - last >= EXAMPLE_GAP_S or ts < last
            if example or self.collect_scores:
                x = profile.features.values(ts)
                p = self.models.propensity.predict_one(x)
                profile.propensity = scores["propensity"] = p
                if example:
                    profile.last_example_ts = ts
                    rows.append(ModelRow(EXAMPLE, uid, eid, ts, x, p))
        if self.collect_scores:
            result.scores.append((event, scores))

    def _check_churn(
        self, view: BatchView, active: dict[str, Event], watermark: float, result: BatchResult
    ) -> None:
        """Raise the churn checks due by the batch's event time and reschedule
        the users of this batch."""
        for partition, user_id, profile in self._sweep_candidates(view, active):
            check = self.alerts.churn_check_at(profile)
            if check is not None and check <= watermark:
                alerts = self.alerts.churn(profile, check, self.models)
                result.alerts += alerts
                self._act(profile, self.actions.from_alerts(alerts, {user_id: profile}), result)
                view.profiles.setdefault(user_id, profile)
                view.dirty_users.add(user_id)
                check = None
            view.churn_checks[partition, user_id] = check

    def recommend(self, view: BatchView, profile: UserProfile) -> list[Recommendation]:
        """What the user is shown: the ranking with the reasons behind it, from
        either scorer: the user's items whose co-occurrence rows hold an item,
        and those shared with the similar sessions that hold it (how many do:
        ``similar_sessions``)."""
        ranked = self.rank(view, profile)
        recs = view.cooccurrence.explain(profile.recent, ranked)
        if self.settings.neighbour_weight <= 0:
            return recs
        drivers = view.session_neighbours.explain(
            profile.recent, ranked[0], session_id(profile), view.cooccurrence.occurrences
        )
        out = []
        for r in recs:
            found = drivers.get(r.item_id)
            if found is None or not r.score:
                out.append(r)
                continue
            shared, count = found
            because = tuple(dict.fromkeys(r.because + shared))[:3]
            out.append(Recommendation(r.item_id, r.score, because, count))
        return out

    def rank(self, view: BatchView, profile: UserProfile) -> Ranked:
        """The bare ranking, items and scores: what a prediction is scored on.
        Co-occurrence, with similar sessions' votes blended in."""
        weight = self.settings.neighbour_weight
        votes = None
        if weight > 0:
            votes = view.session_neighbours.votes(
                profile.recent, session_id(profile), view.cooccurrence.occurrences
            )
        return view.cooccurrence.rank(
            profile.recent,
            k=self.settings.top_k,
            exclude=profile.purchased,
            fallback=view.popularity.top,
            popularity=view.popularity.scores,
            extra=votes,
            extra_weight=weight,
        )

    def _refresh_propensity(self, view: BatchView, last_event: dict[str, Event]) -> None:
        """Each user's propensity as of their last event in the batch, for
        serving (events between examples are not scored one by one)."""
        propensity = self.models.propensity
        for user_id, event in last_event.items():
            if event.type != "purchase":
                profile = view.profiles[user_id]
                profile.propensity = propensity.predict_one(profile.features.values(event.ts))

    def _recommend_after(
        self, view: BatchView, last_event: dict[str, Event], result: BatchResult
    ) -> None:
        """Each user's recommendations as of their last event in the batch;
        published unless the user had some published within the throttle."""
        throttle = self.settings.rec_throttle_s
        for user_id, event in last_event.items():
            items = self.recommend(view, view.profiles[user_id])
            if not items:  # the shop knows no item this user has not bought yet
                continue
            recs = UserRecommendations(
                user_id, event.event_id, event.ts, items,
                fallback=not any(r.because for r in items),
            )
            view.latest[user_id] = recs
            last = view.last_published.get(user_id)
            if last is None or event.ts - last >= throttle or event.ts < last:
                view.last_published[user_id] = event.ts
                view.published[user_id] = event.ts
                result.recommendations.append(recs)
