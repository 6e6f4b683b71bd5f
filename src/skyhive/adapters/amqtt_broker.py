"""The embedded amqtt broker's entry point: amqtt's own broker script, on uvloop, with one fix.

amqtt acknowledges a QoS 1 PUBLISH (PUBACK) once the message is queued for the sending
session's loop, and that loop stops at the client's DISCONNECT, dropping whatever is still
queued. A drone that publishes a burst and disconnects at once (or any client, whenever the
broker is busy) then loses messages it was told were received. Here a disconnection first
hands on everything its session had queued, so an acknowledged message is never dropped.
(A message the loop had already taken may then be handed on after those: order across a
disconnection is not kept; readings carry ``seq`` and timestamps.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from amqtt.broker import Broker
from amqtt.session import Session


class SkyHiveBroker(Broker):  # type: ignore[misc]
    async def _handle_disconnect(
        self, client_session: Session, handler: Any, disconnect_waiter: asyncio.Future[Any]
    ) -> None:
        queued = client_session.delivered_message_queue
        loop = asyncio.get_running_loop()
        while not queued.empty():
            message: asyncio.Future[Any] = loop.create_future()
            message.set_result(queued.get_nowait())
            if not await self._handle_message_delivery(client_session, handler, message):
                break  # a protocol violation: amqtt closes such a session without more ado
        await super()._handle_disconnect(client_session, handler, disconnect_waiter)


def main() -> None:
    """``python -c 'from skyhive.adapters.amqtt_broker import main; main()' -c CONFIG``."""
    import uvloop  # the broker is the busiest process of the embedded stack

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from amqtt.scripts import broker_script

    broker_script.Broker = SkyHiveBroker  # type: ignore[misc]
    broker_script.main()
