"""Broker URLs: the accepted form, and a clear error for everything else."""

from __future__ import annotations

import pytest

from skyhive.adapters.mqtt_url import parse_mqtt_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://localhost:1883", ("localhost", 1883)),
        ("mqtt://127.0.0.1:18830", ("127.0.0.1", 18830)),
        ("mqtt://broker.example.com", ("broker.example.com", 1883)),
        ("mqtt://[::1]:1884", ("::1", 1884)),
        ("mqtt://broker:1883/", ("broker", 1883)),
        ("  mqtt://broker:1883\n", ("broker", 1883)),
    ],
)
def test_valid_urls(url: str, expected: tuple[str, int]) -> None:
    assert parse_mqtt_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("localhost:1883", "scheme"),
        ("tcp://localhost:1883", "scheme 'tcp'"),
        ("mqtts://localhost:8883", "scheme 'mqtts'"),
        ("", "scheme"),
        ("mqtt://:1883", "no host"),
        ("mqtt://localhost:abc", "invalid port"),
        ("mqtt://localhost:70000", "invalid port"),
        ("mqtt://localhost:0", "1-65535"),
        ("mqtt://localhost:1883/skyhive", "path"),
        ("mqtt://localhost:1883?qos=1", "query"),
    ],
)
def test_invalid_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ValueError, match="expected mqtt://host:port") as exc:
        parse_mqtt_url(url)
    assert message in str(exc.value)


def test_credentials_are_rejected_without_echoing_the_password() -> None:
    with pytest.raises(ValueError, match="credentials") as exc:
        parse_mqtt_url("mqtt://user:s3cret@localhost:1883")
    assert "s3cret" not in str(exc.value)
