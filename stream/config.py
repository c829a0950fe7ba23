"""Settings, read once from the environment (``SHOPSTREAM_*``).

Every knob has a default that runs on the embedded dev stack
(``scripts/dev_stack.py up``); pointing at a real Kafka and Redis is a
matter of setting ``SHOPSTREAM_BROKER`` and ``SHOPSTREAM_REDIS_URL``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields


def _env(name: str, default: str) -> str:
    return os.environ.get(f"SHOPSTREAM_{name}", default)


KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class ConfigError(ValueError):
    """A SHOPSTREAM_* variable that cannot be used as given."""


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(raw)


@dataclass(frozen=True)
class Topics:
    clicks: str = "clicks"
    views: str = "views"
    purchases: str = "purchases"
    recommendations: str = "recommendations"
    dead_letters: str = "events-dlq"
    features: str = "features"
    segments: str = "segments"
    alerts: str = "alerts"
    labels: str = "labels"
    actions: str = "actions"
    campaign_results: str = "campaign-results"
    demand: str = "demand"
    # What customers write (stream/voice.py), and the triage of their messages.
    reviews: str = "reviews"
    messages: str = "messages"
    service: str = "service"
    # Stock readings (stream/inventory.py): optional, read beside the events.
    inventory: str = "inventory"

    @property
    def inputs(self) -> tuple[str, str, str]:
        return (self.clicks, self.views, self.purchases)

    @property
    def texts(self) -> tuple[str, str]:
        """The text input topics: read by the ingest agent, outside the event-time clock."""
        return (self.reviews, self.messages)

    def for_event_type(self, event_type: str) -> str:
        """The input topic an event of this type belongs on."""
        if event_type == "view":
            return self.views
        if event_type == "purchase":
            return self.purchases
        return self.clicks


@dataclass(frozen=True)
class Settings:
    broker: str = "kafka://127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # State on a Redis Cluster (redis_url: any of its nodes); see stream/redis_cluster.py.
    redis_cluster: bool = False
    app_id: str = "shopstream"
    prefix: str = "ss:"
    partitions: int = 4
    topics: Topics = field(default_factory=Topics)
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    # A batch is what queued while the previous one ran, up to this many; up
    # to catch_up_batch_max while the worker is behind (see stream/batching.py).
    batch_max: int = 1000
    catch_up_batch_max: int = 4000
    catch_up_after_s: float = 5.0
    user_ttl_days: float = 30.0
    max_neighbours: int = 100
    # Co-occurrence rows a worker keeps between batches (see stream/row_cache.py).
    row_cache_rows: int = 20000
    recent_items: int = 20
    # Session neighbours (see models/session_neighbours.py): sessions kept per
    # item, how many similar sessions vote, and their votes' weight against
    # co-occurrence scores. Off (0) by default: on a live worker they halve
    # throughput and put p99 latency far above 100 ms (README); 2 is the
    # weight tuned on yoochoose.
    sessions_per_item: int = 100
    session_neighbours: int = 100
    neighbour_weight: float = 0.0
    top_k: int = 20
    rec_throttle_s: float = 30.0
    snapshot_every: int = 500
    snapshot_interval_s: float = 10.0
    # Not more often than this, however many updates: a save pickles the whole
    # learner and every worker then unpickles the models (the fraud trees, ~40 ms).
    snapshot_min_interval_s: float = 2.0
    # The learner's own state (pending labels, fraud outcomes: several MB) goes
    # with a snapshot at most this often; a restarted learn agent resumes from
    # it. Pickling it keeps the forked save alive ~4x longer, and every page the
    # worker touches meanwhile is copied: the worst stalls of a live worker.
    learner_save_interval_s: float = 30.0
    # A worker's full garbage-collection passes (see stream/gc_pause.py).
    gc_full_every_s: float = 60.0
    max_message_bytes: int = 65536
    # Alerts (see models/churn.py and models/fraud.py).
    churn_threshold: float = 0.8
    churn_prior_gap_days: float = 2.0
    # The shop's time zone: where its days begin and end (demand per day, models/demand.py).
    timezone: str = "UTC"
    # Demand per item and category (stream/demand.py); a surge alert when a day's units pass
    # the surge_level quantile of the day's forecast and surge_min_units.
    demand: bool = True
    surge_level: float = 0.99
    surge_min_units: int = 50
    # A day closes this long after it ended (on the event-time watermark): purchases of
    # other workers' partitions still on their way count later than that as late.
    demand_close_after_s: float = 3600.0
    # A stock_risk alert when an item's stock (inventory topic) is forecast to run
    # out within this many days: the time a restock takes (at most the 7-day forecast).
    restock_days: float = 7.0
    # Customers seen once (see models/second_visit.py): the share of new
    # customers who ever come back, and the median gap until they do.
    new_return_share: float = 0.3
    new_return_gap_days: float = 7.0
    retention_min_revenue: float = 100.0
    fraud_alert_rate: float = 0.01
    nudge_min_propensity: float = 0.5
    label_ttl_days: float = 30.0
    # Marketing actions (see stream/actions.py): the share of users held out of
    # each campaign, the key of the hash that decides it, and the shop's
    # declared offer campaigns (a JSON file; empty: none).
    holdout_share: float = 0.1
    holdout_key: str = field(default="", repr=False)
    campaigns: str = ""
    # Outcomes (visits, purchases, revenue) count towards a decision for this
    # many days of event time after it (see stream/campaigns.py).
    offer_window_days: float = 7.0
    # Targeting (stream/targeting.py): treated offers per day and declared
    # campaign (0: no budget, every eligible user is decided), and the share
    # of users given offers at random so that the uplift model keeps learning.
    offer_budget_per_day: int = 0
    offer_explore: float = 0.1
    # An input partition silent this long (wall time) no longer holds back
    # the event-time watermark; an idle worker sweeps this often.
    idle_after_s: float = 30.0
    # An input partition with messages waiting, none of which is delivered
    # this long, is read again from the state's offset (stream/partition_watch.py).
    partition_stall_s: float = 20.0
    # Privacy: a key to pseudonymise user ids with (empty: ids as sent), and
    # whether the web view that erases a user is on.
    user_key: str = field(default="", repr=False)
    enable_forget: bool = False
    # What customers write (stream/voice.py): raw text is kept this long; the
    # shop's FAQ (JSONL of intent/question/answer) answers service messages.
    text_ttl_days: float = 30.0
    faq: str = ""
    # A worker saves its text models to Redis this often when they learnt
    # something (stream/text_store.py); a restarted worker loads them.
    text_models_save_s: float = 30.0
    # Kafka security, passed to Faust and kafka-python alike (Redis takes its
    # password and TLS in the URL: redis://:password@host, rediss://host).
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "PLAIN"
    kafka_username: str = ""
    kafka_password: str = field(default="", repr=False)
    kafka_ssl_cafile: str = ""
    # A worker's fetch is answered once this many bytes are there or the wait
    # ends (Faust fixes 1500 ms and 1 byte). Near real time every fetch costs
    # the worker's one Python core as much as the events it brings: one fetch
    # per 40 ms instead of one per few records cut p99 at 2,000 events/s on
    # Kafka from 127 to 83 ms; when behind, 64 KiB come at once, no wait.
    # Tansu answers only when the wait ends, whatever is there.
    kafka_fetch_max_wait_ms: int = 40
    kafka_fetch_min_bytes: int = 65536
    group_session_timeout: float = 6.0
    group_heartbeat_interval: float = 2.0
    group_rebalance_timeout: float = 6.0

    @property
    def text_ttl_s(self) -> int:
        return max(1, int(self.text_ttl_days * 86400))

    @property
    def user_ttl_s(self) -> int:
        return int(self.user_ttl_days * 86400)

    @property
    def bootstrap_servers(self) -> str:
        """The broker URL as kafka-python wants it (``host:port[,host:port]``)."""
        return ",".join(
            part.split("://", 1)[-1] for part in self.broker.split(";") if part
        )

    def kafka_options(self) -> dict[str, str]:
        """kafka-python / aiokafka client options for the security settings."""
        protocol = self.kafka_security_protocol
        if protocol == "PLAINTEXT":
            return {}
        options = {"security_protocol": protocol}
        if protocol.startswith("SASL_"):
            options.update(sasl_mechanism=self.kafka_sasl_mechanism,
                           sasl_plain_username=self.kafka_username,
                           sasl_plain_password=self.kafka_password)
        if protocol.endswith("SSL") and self.kafka_ssl_cafile:
            options["ssl_cafile"] = self.kafka_ssl_cafile
        return options

    def _ssl_context(self) -> object | None:
        if not self.kafka_security_protocol.endswith("SSL"):
            return None
        import ssl

        return ssl.create_default_context(cafile=self.kafka_ssl_cafile or None)

    def aiokafka_options(self) -> dict[str, object]:
        """The same options for aiokafka, which takes an SSL context, not a CA file."""
        options: dict[str, object] = dict(self.kafka_options())
        options.pop("ssl_cafile", None)
        context = self._ssl_context()
        if context is not None:
            options["ssl_context"] = context
        return options

    def faust_credentials(self) -> object | None:
        """The same settings as Faust's ``broker_credentials``."""
        import faust

        protocol = self.kafka_security_protocol
        if protocol == "PLAINTEXT":
            return None
        context = self._ssl_context()
        if protocol == "SSL":
            return faust.SSLCredentials(context)
        return faust.SASLCredentials(username=self.kafka_username, password=self.kafka_password,
                                     mechanism=self.kafka_sasl_mechanism, ssl_context=context)

    @classmethod
    def from_env(cls) -> "Settings":
        d = cls()
        topics = Topics(
            clicks=_env("TOPIC_CLICKS", d.topics.clicks),
            views=_env("TOPIC_VIEWS", d.topics.views),
            purchases=_env("TOPIC_PURCHASES", d.topics.purchases),
            recommendations=_env("TOPIC_RECOMMENDATIONS", d.topics.recommendations),
            dead_letters=_env("TOPIC_DLQ", d.topics.dead_letters),
            features=_env("TOPIC_FEATURES", d.topics.features),
            segments=_env("TOPIC_SEGMENTS", d.topics.segments),
            alerts=_env("TOPIC_ALERTS", d.topics.alerts),
            labels=_env("TOPIC_LABELS", d.topics.labels),
            actions=_env("TOPIC_ACTIONS", d.topics.actions),
            campaign_results=_env("TOPIC_CAMPAIGN_RESULTS", d.topics.campaign_results),
            demand=_env("TOPIC_DEMAND", d.topics.demand),
            reviews=_env("TOPIC_REVIEWS", d.topics.reviews),
            messages=_env("TOPIC_MESSAGES", d.topics.messages),
            service=_env("TOPIC_SERVICE", d.topics.service),
            inventory=_env("TOPIC_INVENTORY", d.topics.inventory),
        )
        values: dict[str, object] = {"topics": topics}
        for f in fields(cls):
            if f.name == "topics":
                continue
            raw = os.environ.get(f"SHOPSTREAM_{f.name.upper()}")
            if raw is None:
                continue
            kind = type(getattr(d, f.name))
            try:
                values[f.name] = _flag(raw) if kind is bool else kind(raw)
            except ValueError:
                raise ConfigError(
                    f"SHOPSTREAM_{f.name.upper()}={raw!r} is not a valid {kind.__name__}"
                ) from None
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.kafka_security_protocol not in KAFKA_PROTOCOLS:
            raise ConfigError(f"SHOPSTREAM_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(KAFKA_PROTOCOLS)}")
        if settings.kafka_fetch_max_wait_ms < 0 or settings.kafka_fetch_min_bytes < 1:
            raise ConfigError("SHOPSTREAM_KAFKA_FETCH_MAX_WAIT_MS must be >= 0 and "
                              "SHOPSTREAM_KAFKA_FETCH_MIN_BYTES >= 1")
        if settings.redis_cluster and settings.neighbour_weight > 0:
            raise ConfigError("SHOPSTREAM_NEIGHBOUR_WEIGHT > 0 is not supported with "
                              "SHOPSTREAM_REDIS_CLUSTER=1 yet (session neighbours read across slots)")
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(settings.timezone)
        except (ValueError, KeyError, OSError):
            raise ConfigError(f"SHOPSTREAM_TIMEZONE={settings.timezone!r} is not a time zone (e.g. UTC, Europe/London)") from None
        if not (0.5 < settings.surge_level < 1 and settings.surge_min_units >= 1):
            raise ConfigError("SHOPSTREAM_SURGE_LEVEL must be between 0.5 and 1 (exclusive) "
                              "and SHOPSTREAM_SURGE_MIN_UNITS >= 1")
        if not 0 < settings.restock_days <= 7:
            raise ConfigError("SHOPSTREAM_RESTOCK_DAYS must be a number of days > 0 and <= 7 "
                              "(the forecast's horizon)")
        if not settings.gc_full_every_s > 0:
            raise ConfigError("SHOPSTREAM_GC_FULL_EVERY_S must be a number of seconds > 0")
        if not (0 < settings.new_return_share < 1 and settings.new_return_gap_days > 0):
            raise ConfigError("SHOPSTREAM_NEW_RETURN_SHARE must be between 0 and 1 (exclusive) "
                              "and SHOPSTREAM_NEW_RETURN_GAP_DAYS a number of days > 0")
        if not 0 <= settings.holdout_share < 1:
            raise ConfigError("SHOPSTREAM_HOLDOUT_SHARE must be a share between 0 and 1 (e.g. 0.1)")
        if not settings.offer_window_days > 0:
            raise ConfigError("SHOPSTREAM_OFFER_WINDOW_DAYS must be a number of days > 0")
        if settings.offer_budget_per_day < 0 or not 0 <= settings.offer_explore <= 1:
            raise ConfigError("SHOPSTREAM_OFFER_BUDGET_PER_DAY must be >= 0 and "
                              "SHOPSTREAM_OFFER_EXPLORE a share between 0 and 1")
        if settings.campaigns:
            from stream.actions import CampaignError, load_campaigns

            try:
                load_campaigns(settings.campaigns)
            except CampaignError as exc:
                raise ConfigError(f"SHOPSTREAM_CAMPAIGNS: {exc}") from None
        if not settings.text_ttl_days > 0:
            raise ConfigError("SHOPSTREAM_TEXT_TTL_DAYS must be a number of days > 0")
        if settings.faq:
            from stream.faq import FaqError, load_faq

            try:
                load_faq(settings.faq)
            except FaqError as exc:
                raise ConfigError(f"SHOPSTREAM_FAQ: {exc}") from None
        if settings.kafka_sasl_mechanism not in SASL_MECHANISMS:
            raise ConfigError(f"SHOPSTREAM_KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}")
        return settings
