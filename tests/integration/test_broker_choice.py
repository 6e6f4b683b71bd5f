"""Which broker `skyhive up` embeds (SKYHIVE_BROKER): Mosquitto wherever its binary is, amqtt
otherwise, saying so and how to install Mosquitto; never an apt-get of its own in ``auto``."""

from __future__ import annotations

import logging
import os

import pytest

from skyhive import embedded
from skyhive.embedded import choose_broker, find_mosquitto
from skyhive.settings import Settings
from skyhive.supervisor import _mqtt_note


def test_auto_is_mosquitto_where_it_is_installed(caplog: pytest.LogCaptureFixture) -> None:
    exe = find_mosquitto()
    assert exe is not None and os.access(exe, os.X_OK), "make test installs Mosquitto"
    assert choose_broker("auto") == "mosquitto"
    assert choose_broker("mosquitto") == "mosquitto"
    assert choose_broker("amqtt") == "amqtt"
    assert not caplog.records


def test_auto_falls_back_to_amqtt_and_says_how_to_install_mosquitto(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A machine without Mosquitto (its lookup made to find nothing): amqtt, with a warning;
    nothing is installed (``mosquitto_path``, which would, is never called)."""
    monkeypatch.setattr(embedded, "find_mosquitto", lambda: None)

    def no_install(*_a: object) -> str:
        raise AssertionError("auto must not install Mosquitto")

    monkeypatch.setattr(embedded, "mosquitto_path", no_install)
    with caplog.at_level(logging.WARNING, logger="skyhive.embedded"):
        assert choose_broker("auto") == "amqtt"
    [warning] = caplog.records
    assert "make mosquitto" in warning.getMessage()
    assert "apt-get install mosquitto" in warning.getMessage()
    note = _mqtt_note(Settings(), "amqtt")
    assert "amqtt" in note and "make mosquitto" in note
    assert "Mosquitto" in _mqtt_note(Settings(), "mosquitto")
    assert "make mosquitto" not in _mqtt_note(Settings(broker="amqtt"), "amqtt")  # asked for


def test_an_unknown_broker_is_refused() -> None:
    with pytest.raises(embedded.EmbeddedError):
        choose_broker("rabbitmq")
