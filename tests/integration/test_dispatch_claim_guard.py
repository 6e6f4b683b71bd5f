"""Two dispatchers that choose the same drone for two deliveries: one claim wins.

Each dispatcher judges from the claims it read; the assignment script claims the drone only
if no one holds it (``SET NX``). Here the race is not left to chance: the second dispatcher
commits its choice, made when the drone was free, right after the first one has assigned the
drone. (``test_dispatch_concurrency.py`` races two processes over 200 orders, but this
interleaving is only one of many there.) Real embedded Redis, MongoDB and broker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import delivery_wiring as wire
import pytest
from dispatch_world import PICKUP, DroneRadio, World, command_publisher

from polling import wait_for
from skyhive.services.dispatcher import Dispatcher
from skyhive.wiring import Clients

pytestmark = pytest.mark.mqtt  # the drones and the dispatcher talk over the broker


class CommitsLate(Dispatcher):
    """A dispatcher that lets ``cut_in`` run between choosing its drones and committing."""

    cut_in: Callable[[], None] | None = None

    def _commit(self, choices: list[Any]) -> set[str]:
        if self.cut_in is not None:
            cut_in, self.cut_in = self.cut_in, None
            cut_in()
        return super()._commit(choices)


@pytest.fixture
def world(clients: Clients) -> World:
    return World(clients)


def test_a_drone_claimed_while_another_dispatcher_chose_it_is_not_assigned_twice(
    world: World, clients: Clients
) -> None:
    world.register("solo")
    world.fly("solo", PICKUP.lat, PICKUP.lon, 100, "idle")
    first = world.order(PICKUP.lat + 0.01, PICKUP.lon)
    second = world.order(PICKUP.lat, PICKUP.lon + 0.01)
    radio = DroneRadio(clients.settings, ["solo"])
    try:
        with command_publisher(clients.settings) as publish:
            fast = wire.dispatcher(clients, publish, "fast")
            late = wire.dispatcher(clients, publish, "late", kind=CommitsLate)
            fast.setup()
            late.setup()
            results: list[tuple[set[str], set[str]]] = []

            def fast_assigns_the_drone_first() -> None:
                results.append(fast.dispatch_batch([first]))
                assert clients.dispatch_queue.claimed(["solo"]) == {"solo": first}

            late.cut_in = fast_assigns_the_drone_first
            lost = late.dispatch_batch([second])  # chose "solo" while it was free
            assert late.cut_in is None  # the other dispatcher did cut in
            assert results == [({first}, set())]
            assert lost == (set(), {second})  # lost the race for its drone: retried at once

            assert clients.dispatch_queue.claimed(["solo"]) == {"solo": first}
            assert clients.redis_text.hget(clients.dispatch_queue.keys.status, second) == "pending"
            assert second in clients.dispatch_queue.pending(10)
            assert late.dispatch_pending(retry_all=True) == 0  # the drone is taken now
            for d in (fast, late):
                d.recorder.drain()
            wait_for(lambda: bool(radio.commands("solo")), "the deliver command at the drone")
            time.sleep(0.5)  # room for a second command, were one sent
        docs = {x: world.svc.get(x) for x in (first, second)}
        assert docs[first].status == "assigned" and docs[first].drone_id == "solo"
        assert docs[second].status == "pending" and docs[second].drone_id is None
        assert "already assigned" in docs[second].waiting_reason
        assert [c["delivery_id"] for c in radio.commands("solo")] == [first]
        assert clients.dispatch_queue.journal() == {}
    finally:
        radio.close()
