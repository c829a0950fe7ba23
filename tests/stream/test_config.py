"""Settings from the environment: security pass-through, secrets kept out of sight."""

from __future__ import annotations

import faust
import pytest

from stream.config import ConfigError, Settings


def from_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(f"SHOPSTREAM_{name}", value)
    return Settings.from_env()


def test_plaintext_by_default() -> None:
    settings = Settings()
    assert settings.kafka_options() == {} and settings.aiokafka_options() == {}
    assert settings.faust_credentials() is None


def test_sasl_over_tls_reaches_every_kafka_client(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = from_env(monkeypatch, KAFKA_SECURITY_PROTOCOL="SASL_SSL",
                        KAFKA_SASL_MECHANISM="SCRAM-SHA-512", KAFKA_USERNAME="shop",
                        KAFKA_PASSWORD="s3cret-pw", USER_KEY="hm4c-k3y")
    assert settings.kafka_options() == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "shop", "sasl_plain_password": "s3cret-pw"}
    assert settings.aiokafka_options()["sasl_plain_password"] == "s3cret-pw"
    assert settings.aiokafka_options()["ssl_context"] is not None
    credentials = settings.faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.username == "shop" and credentials.ssl_context is not None
    # Secrets never show in the settings' text (logs, tracebacks, /health).
    assert "s3cret-pw" not in repr(settings) and "hm4c-k3y" not in repr(settings)


def test_tls_only(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = from_env(monkeypatch, KAFKA_SECURITY_PROTOCOL="SSL")
    assert settings.kafka_options() == {"security_protocol": "SSL"}
    assert isinstance(settings.faust_credentials(), faust.SSLCredentials)


@pytest.mark.parametrize("env, message", [
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "SHOPSTREAM_KAFKA_SECURITY_PROTOCOL must be one of"),
    ({"KAFKA_SASL_MECHANISM": "GSSAPI"}, "SHOPSTREAM_KAFKA_SASL_MECHANISM must be one of"),
    ({"ENABLE_FORGET": "maybe"}, "SHOPSTREAM_ENABLE_FORGET='maybe' is not a valid bool"),
    ({"PARTITIONS": "four"}, "SHOPSTREAM_PARTITIONS='four' is not a valid int"),
    ({"GC_FULL_EVERY_S": "0"}, "SHOPSTREAM_GC_FULL_EVERY_S must be a number of seconds > 0"),
    ({"RESTOCK_DAYS": "14"}, "SHOPSTREAM_RESTOCK_DAYS must be a number of days > 0 and <= 7"),
])
def test_unusable_settings_say_which_and_why(monkeypatch: pytest.MonkeyPatch, env: dict,
                                             message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_env(monkeypatch, **env)


def test_the_inventory_topic_and_restock_days_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = from_env(monkeypatch, TOPIC_INVENTORY="stock-levels", RESTOCK_DAYS="3.5")
    assert settings.topics.inventory == "stock-levels" and settings.restock_days == 3.5
    assert Settings().topics.inventory == "inventory" and Settings().restock_days == 7.0
