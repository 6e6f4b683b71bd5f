"""`skyhive mavlink gateway`: MAVLink over UDP ⇄ the bus (``services/mavlink_gateway.py``)."""

from __future__ import annotations

import threading

from skyhive.adapters.mavlink_codec import VehicleCodec, result_name, split_frames
from skyhive.adapters.mavlink_udp import UdpLinks
from skyhive.services.group_consumer import GroupConsumer
from skyhive.services.mavlink_commands import GROUP, MavlinkCommands
from skyhive.services.mavlink_gateway import MavlinkGateway
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers import runner

COMMANDS_BATCH = 50


def build_mavlink(
    clients: Clients, links: UdpLinks, consumer: str
) -> tuple[MavlinkGateway, MavlinkCommands]:
    s = clients.settings
    cfg = s.mavlink
    gateway = MavlinkGateway(
        cfg, clients.ingest, clients.deadletters, clients.fleet, links, VehicleCodec,
        split_frames, clients.clock,
    )  # fmt: skip
    group = GroupConsumer(
        clients.bus, s.commands_stream, GROUP, consumer, COMMANDS_BATCH, 0, s.claim_idle_ms,
        clients.clock,
    )  # fmt: skip
    commands = MavlinkCommands(cfg, gateway, group, clients.deliveries, result_name, clients.clock)
    return gateway, commands


def worker(clients: Clients) -> runner.Worker:
    links = UdpLinks(clients.settings.mavlink.endpoints)
    gateway, commands = build_mavlink(clients, links, runner.consumer_name())

    def setup() -> None:
        gateway.refresh()
        commands.setup()

    def run(stop: threading.Event) -> None:
        gateway.run(stop, commands.step)

    return runner.Worker("mavlink", [("mavlink", run)], setup=setup, close=links.close)


def run_mavlink(settings: Settings, stop: threading.Event) -> None:
    if not settings.mavlink.endpoints:
        raise SystemExit("SKYHIVE_MAVLINK__LISTEN is not set: no endpoint to listen on")
    runner.run(settings, stop, worker)
