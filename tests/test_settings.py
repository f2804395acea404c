"""shared.settings: the failover settings (sentinels, replicated acknowledgement), checked at start-up."""

from __future__ import annotations

import pytest

from shared.settings import ConfigError, load


def test_sentinels_name_the_engines_primary_and_the_queue_follows_it_by_default() -> None:
    settings = load({"FLASHSALE_REDIS_SENTINELS": "10.0.0.1:26379, [::1]:26380,sentinel-c:5000"})

    assert settings.redis_sentinels == (("10.0.0.1", 26379), ("::1", 26380), ("sentinel-c", 5000))
    assert settings.redis_sentinel_service == "flashsale"
    assert settings.queue_redis_sentinels == settings.redis_sentinels
    assert settings.queue_redis_sentinel_service == "flashsale"
    assert settings.queue_redis_url == settings.redis_url


def test_the_queue_has_its_own_sentinels_and_service_when_given() -> None:
    settings = load(
        {
            "FLASHSALE_REDIS_SENTINELS": "a:1",
            "FLASHSALE_REDIS_SENTINEL_SERVICE": "engine",
            "FLASHSALE_QUEUE_REDIS_SENTINELS": "b:2",
            "FLASHSALE_QUEUE_REDIS_SENTINEL_SERVICE": "queue",
        }
    )

    assert (settings.redis_sentinels, settings.redis_sentinel_service) == ((("a", 1),), "engine")
    assert (settings.queue_redis_sentinels, settings.queue_redis_sentinel_service) == ((("b", 2),), "queue")


def test_a_queue_url_of_its_own_is_a_plain_server_unless_it_has_sentinels_too() -> None:
    settings = load({"FLASHSALE_REDIS_SENTINELS": "a:1", "FLASHSALE_QUEUE_REDIS_URL": "redis://queue:6379/2"})

    assert settings.queue_redis_url == "redis://queue:6379/2"
    assert settings.queue_redis_sentinels == ()


def test_a_cluster_takes_its_queue_from_sentinels_alone() -> None:
    settings = load({"FLASHSALE_REDIS_CLUSTER": "1", "FLASHSALE_QUEUE_REDIS_SENTINELS": "q:26379"})

    assert settings.queue_redis_sentinels == (("q", 26379),)
    assert settings.redis_sentinels == ()


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"FLASHSALE_REDIS_SENTINELS": "a"}, "FLASHSALE_REDIS_SENTINELS"),
        ({"FLASHSALE_REDIS_SENTINELS": "a:x"}, "FLASHSALE_REDIS_SENTINELS"),
        ({"FLASHSALE_REDIS_SENTINELS": "a:1,,b:2"}, "FLASHSALE_REDIS_SENTINELS"),
        ({"FLASHSALE_REDIS_SENTINELS": "user@a:1"}, "FLASHSALE_REDIS_SENTINELS"),
        ({"FLASHSALE_REDIS_SENTINELS": "a:70000"}, "FLASHSALE_REDIS_SENTINELS"),
        ({"FLASHSALE_QUEUE_REDIS_SENTINELS": "a:1/x"}, "FLASHSALE_QUEUE_REDIS_SENTINELS"),
        (
            {"FLASHSALE_REDIS_SENTINELS": "a:1", "FLASHSALE_REDIS_SENTINEL_SERVICE": "two words"},
            "FLASHSALE_REDIS_SENTINEL_SERVICE",
        ),
        (
            {
                "FLASHSALE_REDIS_SENTINELS": "a:1",
                "FLASHSALE_REDIS_CLUSTER": "1",
                "FLASHSALE_QUEUE_REDIS_URL": "redis://q",
            },
            "FLASHSALE_REDIS_SENTINELS",
        ),
        ({"FLASHSALE_REDIS_SENTINELS": "a:1", "FLASHSALE_REDIS_URL": "unix:///tmp/r.sock"}, "FLASHSALE_REDIS_URL"),
        ({"FLASHSALE_REDIS_ACK_REPLICAS": "-1"}, "FLASHSALE_REDIS_ACK_REPLICAS"),
        ({"FLASHSALE_REDIS_ACK_REPLICAS": "one"}, "FLASHSALE_REDIS_ACK_REPLICAS"),
        ({"FLASHSALE_REDIS_ACK_TIMEOUT_MS": "0"}, "FLASHSALE_REDIS_ACK_TIMEOUT_MS"),
        ({"FLASHSALE_REDIS_ACK_TIMEOUT_MS": "60001"}, "FLASHSALE_REDIS_ACK_TIMEOUT_MS"),
    ],
)
def test_a_failover_setting_that_makes_no_sense_stops_start_up_naming_it(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(env)

    assert error.value.variable == variable


def test_acknowledgement_is_off_by_default_and_waits_200_ms_when_on() -> None:
    assert (load({}).redis_ack_replicas, load({}).redis_ack_timeout_ms) == (0, 200)
    on = load({"FLASHSALE_REDIS_ACK_REPLICAS": "2", "FLASHSALE_REDIS_ACK_TIMEOUT_MS": "50"})
    assert (on.redis_ack_replicas, on.redis_ack_timeout_ms) == (2, 50)
