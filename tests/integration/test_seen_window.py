"""The processor's duplicate window in Redis (``adapters/drone_memory.py``): a seq is seen only
if its slot holds exactly it, at any size a seq may have, and a climbing counter's window is
its last ``window`` seqs."""

from __future__ import annotations

from datetime import UTC, datetime

from skyhive.adapters.drone_memory import SCRIPT_CHUNK, DroneMemory, seen_key
from skyhive.ports.fleet_state import FleetWrite
from skyhive.wiring import Clients

AT = datetime(2026, 1, 1, tzinfo=UTC)


def seen(memory: DroneMemory, drone: str, seqs: list[int]) -> list[bool]:
    return memory.recall({drone: seqs}, {}, 1.0).drones[drone].seen


def mark(memory: DroneMemory, drone: str, seqs: list[int]) -> None:
    memory.commit(FleetWrite(updated_at=AT, heard_at=AT, seen={drone: seqs}))


def test_seqs_are_told_apart_exactly_at_every_size(clients: Clients) -> None:
    memory = DroneMemory(clients.redis_text, clients.active_alerts, 2048)
    marked = [0, 1, 2**53 + 5, 2**63 - 1]  # slots 0, 1, 5 and 2047
    assert seen(memory, "w1", marked) == [False] * 4
    mark(memory, "w1", marked)
    assert seen(memory, "w1", marked) == [True] * 4
    # Seqs in the same slots: a double could not tell 2**63 - 1 from 2**63 - 2049.
    assert seen(memory, "w1", [2048, 2**53 + 2053, 2**63 - 2049, 2]) == [False] * 4
    assert seen(memory, "w2", [0, 1]) == [False, False]  # windows are per drone


def test_a_climbing_counter_keeps_its_last_window_of_seqs(clients: Clients) -> None:
    memory = DroneMemory(clients.redis_text, clients.active_alerts, 16)
    mark(memory, "w3", list(range(16)))
    assert seen(memory, "w3", list(range(16))) == [True] * 16
    mark(memory, "w3", [16, 17])
    assert seen(memory, "w3", [0, 1, 2, 16, 17]) == [False, False, True, True, True]
    ttl = clients.redis_text.ttl(seen_key("w3"))
    assert 0 < ttl <= 7 * 86400


def test_a_batch_of_more_drones_than_one_script_takes_is_read_and_written_whole(
    clients: Clients,
) -> None:
    memory = DroneMemory(clients.redis_text, clients.active_alerts, 2048)
    drones = {f"c{i}": [i, i + 1] for i in range(2 * SCRIPT_CHUNK + 50)}
    write = FleetWrite(updated_at=AT, heard_at=AT, seen=drones)
    write.memory = {d: f'{{"t": {i}}}'.encode() for i, d in enumerate(drones)}
    memory.commit(write)
    asked = {d: [seqs[1], seqs[1] + 1] for d, seqs in drones.items()}  # one seen, one not
    got = memory.recall(asked, {}, 1.0).drones
    assert [got[d].seen for d in drones] == [[True, False]] * len(drones)
    assert [got[d].memory for d in drones] == [m.decode() for m in write.memory.values()]
