"""The worker's web views: health, metrics, and what the state knows of a
user, an item, a category, the campaigns and the segments.

They register on the Faust app of :mod:`stream.app` when it loads this
module; each view reads, none writes, apart from ``/forget``.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from faust.web import Request, Response, View

from stream import campaigns
from stream.app import app, clock, features_topic, health, log, processor, settings, state
from stream.outputs import UserView


@app.page("/health")
async def health_view(web, request):  # type: ignore[no-untyped-def]
    return web.json(health.to_dict(), status=200 if health.ok else 503)


@app.page("/metrics")
async def metrics_view(web, request):  # type: ignore[no-untyped-def]
    models = processor.models
    return web.json({
        **health.counters.to_dict(),
        # Co-occurrence rows of batches: read from Redis, or kept from earlier batches.
        "rows_read": state.rows_read,
        "rows_cached": state.rows_cached,
        "models_version": models.version,
        "propensity": models.metrics,
        "fraud": {"threshold": models.fraud_threshold, **models.fraud_metrics},
        # This worker's text models (stream/voice_batch.py): what they have learnt from.
        "voice": {"sentiment_seen": dict(processor.voice.models.sentiment.seen),
                  "sentiment_ready": processor.voice.models.sentiment.ready,
                  "intents": len(processor.voice.models.intent.intents)},
    })


@app.page("/campaigns")
async def campaigns_view(web, request):  # type: ignore[no-untyped-def]
    """Treated against held out per action kind, campaign and segment, as of
    the event-time watermark (stream/campaigns.py)."""
    now = clock.watermark()
    rows = campaigns.report(await state.campaign_counts(), now, settings.offer_window_days,
                            processor.campaign_costs)
    return web.json({"as_of": now, "window_days": settings.offer_window_days,
                     "holdout_share": settings.holdout_share, "campaigns": rows})


@app.page("/segments")
async def segments_view(web, request):  # type: ignore[no-untyped-def]
    models = processor.models
    return web.json({"models_version": models.version, "segments": models.segments.profiles()})


async def _per_user(web, user_id: str, fetch, what: str):  # type: ignore[no-untyped-def]
    if len(user_id) > 256:
        return web.json({"error": "user id too long"}, status=400)
    found = await fetch(processor.pseudonym(user_id))  # the shop asks by its own id
    if found is None:
        return web.json({"error": f"no {what} for user {user_id!r}"}, status=404)
    return web.json(found.to_dict())


@app.page("/recommendations/{user_id}")
async def recommendations_view(web, request, user_id: str):  # type: ignore[no-untyped-def]
    return await _per_user(web, user_id, state.recommendations, "recommendations")


@dataclass
class _WithVoice:
    """A user's view with their latest sentiment (stream/voice_batch.py)."""

    view: "UserView | None"
    voice: dict | None

    def to_dict(self) -> dict:
        base = self.view.to_dict() if self.view is not None else {}
        voice = self.voice or {}
        return {**base, "sentiment": voice.get("sentiment"), "sentiment_ts": voice.get("ts")}


async def _user(user_id: str) -> "_WithVoice | None":
    profile = await state.profile(user_id)
    voice = await state.user_voice(user_id)
    if profile is None:
        return None if voice is None else _WithVoice(None, voice)
    now = clock.watermark() or profile.last_seen or 0.0
    view = UserView(profile, processor.models, round(processor.alerts.churn_risk(profile, now), 6))
    return _WithVoice(view, voice)


@app.page("/items/{item_id}/satisfaction")
async def satisfaction_view(web, request, item_id: str):  # type: ignore[no-untyped-def]
    from stream.satisfaction import satisfaction

    if len(item_id) > 256:
        return web.json({"error": "item id too long"}, status=400)
    doc = await state.item_voice(item_id)
    if doc is None:
        return web.json({"error": f"no reviews for item {item_id!r}"}, status=404)
    now = max([r[0] for r in doc["recent"]] + [clock.watermark() or 0.0])
    return web.json({"item_id": item_id, **satisfaction(doc, now, settings.text_ttl_s)})


async def _demand(web, series: str):  # type: ignore[no-untyped-def]
    if len(series) > 300:
        return web.json({"error": "id too long"}, status=400)
    found = await state.demand_forecast(series)
    if found is None:
        return web.json({"error": f"no demand known for {series!r}"}, status=404)
    return web.json(found.to_dict())


@app.page("/items/{item_id}/demand")
async def item_demand_view(web, request, item_id: str):  # type: ignore[no-untyped-def]
    return await _demand(web, f"item:{item_id}")


@app.page("/categories/{category}/demand")
async def category_demand_view(web, request, category: str):  # type: ignore[no-untyped-def]
    return await _demand(web, f"category:{category}")


@app.page("/trending")
async def trending_view(web, request):  # type: ignore[no-untyped-def]
    """Items (``?kind=category``: categories) selling above their forecast on the
    shop's latest open day, the least likely first (stream/demand.py)."""
    from stream.demand import TRENDING_LEVEL, day_iso

    kind = request.query.get("kind", "item")
    raw_n = request.query.get("n", "20")
    if kind not in ("item", "category") or not raw_n.isdigit() or not 1 <= int(raw_n) <= 500:
        return web.json({"error": "kind must be item or category, n a number from 1 to 500"}, status=400)
    if not settings.demand:
        return web.json({"error": "demand is off (SHOPSTREAM_DEMAND=0, or Redis Cluster)"}, status=404)
    day, rows = await state.demand_trending(kind, int(raw_n))
    return web.json({"day": None if day is None else day_iso(day), "kind": kind,
                     "above_quantile": TRENDING_LEVEL, "trending": rows})


@app.page("/users/{user_id}")
async def user_view(web, request, user_id: str):  # type: ignore[no-untyped-def]
    return await _per_user(web, user_id, _user, "profile")


@app.page("/forget/{user_id}")
class ForgetView(View):
    """POST erases one user (off unless ``SHOPSTREAM_ENABLE_FORGET``)."""

    async def post(self, request: Request, user_id: str) -> Response:
        if not settings.enable_forget:
            return self.json({"error": "erasure is off (SHOPSTREAM_ENABLE_FORGET)"}, status=403)
        if len(user_id) > 256:
            return self.json({"error": "user id too long"}, status=400)
        erased, row = await processor.forget(user_id)
        await features_topic.send(key=b"learner", value=orjson.dumps([row]))
        log.info("erased a user on request (%s)", erased)  # no id in the log
        return self.json({"user_id": user_id, "erased": erased, "learner": "told"})
