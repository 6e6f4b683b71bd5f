"""Parse ``mqtt://host:port`` broker URLs, the one form SkyHive's settings and CLI accept."""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_MQTT_PORT = 1883


def parse_mqtt_url(url: str) -> tuple[str, int]:
    """``mqtt://host:port`` → ``(host, port)``; the port defaults to 1883.

    Anything the clients would silently ignore (credentials, a path, TLS schemes) is rejected,
    so a misconfigured URL fails at startup instead of connecting somewhere unexpected.
    """
    parts = urlsplit(url.strip())
    expected = f"expected mqtt://host:port, got {url!r}"
    if parts.scheme != "mqtt":
        raise ValueError(f"unsupported MQTT URL scheme {parts.scheme!r}: {expected}")
    if parts.username is not None or parts.password is not None:
        # The URL is not echoed here: it would put the password in logs.
        raise ValueError("credentials are not supported in the MQTT URL: expected mqtt://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"MQTT URL must not have a path, query or fragment: {expected}")
    if not parts.hostname:
        raise ValueError(f"MQTT URL has no host: {expected}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"MQTT URL has an invalid port: {expected}") from None
    if port == 0:
        raise ValueError(f"MQTT URL port must be 1-65535: {expected}")
    return parts.hostname, DEFAULT_MQTT_PORT if port is None else port
