"""Drone fleet simulator: realistic telemetry (and injected faults) published over MQTT.

``drone`` (the state machine), ``flight``, ``battery`` and ``faults`` are pure and
deterministic under a seeded RNG; ``runner`` owns the clock and ``links`` the MQTT connections
(one per drone, each with its own credentials), through which drones also obey the
dispatcher's commands. ``mavlink_runner`` flies the same fleet as MAVLink vehicles over UDP
(``mavlink_encode`` out, ``mavlink_mission`` in, both pure).
"""

from skyhive.simulator.drone import SimDrone, make_fleet
from skyhive.simulator.faults import FaultRates, MalformedKind, MessageFaults
from skyhive.simulator.runner import SimStats, SimulatorConfig, run_simulator

__all__ = [
    "FaultRates",
    "MalformedKind",
    "MessageFaults",
    "SimDrone",
    "SimStats",
    "SimulatorConfig",
    "make_fleet",
    "run_simulator",
]
