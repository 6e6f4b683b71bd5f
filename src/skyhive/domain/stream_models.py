"""Models on the telemetry stream, as plug-ins: the interface a model implements.

A stream model learns from every reading of the fleet and may say two things: findings,
which become alerts through the alerting engine (deduplicated, acknowledged and resolved
like the rules' alerts), and values, which become metrics. The ``models`` role
(``services/model_runner.py``) runs each enabled model in a consumer group of its own on the
telemetry stream (``model-<name>``), so a slow model never delays live state, alerts or
history, and each model sees every reading whatever the others do.

What the runner promises a model, so that a model need not defend against the bus:

- each drone's readings come in event-time order, each once: a reading older than (or the
  same as) the last one the model saw of that drone is dropped before the model sees it
  (replays after a crash, out-of-order delivery);
- a drone's state is handed back after a restart: the runner saves ``state(drone)`` every
  ``SKYHIVE_MODELS__SAVE_EVERY_S`` and on a clean stop (MongoDB ``model_state``), and
  calls ``restore`` before the drone's first reading in a new process. A crash loses what
  the model learnt since the last save, never an alert;
- ``observe`` and ``state`` are called from one thread.

A model is found through the ``skyhive.models`` entry point group: the entry point's name is
the model's name, its object a :data:`StreamModelFactory` called with the model's options
(``ModelsConfig.options_for``). See docs/architecture.md, "Stream models", for an example.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from skyhive.domain.alert_rules import Finding
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.telemetry import Telemetry

ENTRY_POINT_GROUP = "skyhive.models"
# Flying as planned: where flight behaviour is comparable from one reading to the next (an
# emergency is the rules' business).
FLYING = frozenset({"in_flight", "returning"})

# (drone id, finding): a finding with a severity holds the condition (opens or counts the
# drone's alert of ``finding.type``), one with ``severity=None`` says it cleared (resolves it
# when the type resolves by itself, ``AlertConfig.auto_resolve``).
DroneFinding = tuple[str, Finding]


class StreamModel(Protocol):
    """A model the ``models`` role runs; its ``name`` is its entry point's."""

    name: str

    def observe(
        self, readings: Sequence[Telemetry], specs: Mapping[str, DroneSpec]
    ) -> list[DroneFinding]:
        """Learn from a batch of readings (each drone's in event-time order) and say what
        they show; ``specs``: the registry entries of the batch's registered drones."""

    def metrics(self) -> Mapping[str, float]:
        """Values about the model as a whole, by a fixed set of names (each one Prometheus
        series: never one per drone)."""

    def state(self, drone_id: str) -> dict[str, Any] | None:
        """What the model must remember of a drone across a restart, as JSON-compatible
        values (None: nothing)."""

    def restore(self, drone_id: str, state: Mapping[str, Any]) -> None:
        """Take back a drone's saved :meth:`state`."""


StreamModelFactory = Callable[[Mapping[str, Any]], StreamModel]
