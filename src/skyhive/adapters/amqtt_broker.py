"""The embedded amqtt broker's entry point: amqtt's own broker script, on uvloop, with two
fixes to how amqtt 0.12 treats connections (tests in integration/test_device_access.py) and
the access plugin's topic check called directly.

1. Acknowledged means kept. amqtt acknowledges a QoS 1 PUBLISH (PUBACK) once the message is
   queued for the sending session's loop, and that loop stops at the client's DISCONNECT,
   dropping whatever is still queued: a drone that publishes a burst and disconnects at once
   (or any client, whenever the broker is busy) lost messages it was told were received. Here a
   disconnection first hands on everything its session had queued. (A message the loop had
   already taken may then be handed on after those: order across a disconnection is not kept;
   readings carry ``seq`` and timestamps.)
2. Authenticate first. amqtt acts on a CONNECT's client id before it authenticates the client:
   a clean-session CONNECT deletes the existing session of that id (the gateway's
   subscriptions and queued messages), and any CONNECT takes over a live connection of that
   id, even when the newcomer is then refused. Here the CONNECT is authenticated as soon as it
   is read, and a refused one is answered and closed before amqtt looks at any session. (The
   access plugin also refuses a client id whose session belongs to another identity.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from amqtt import broker as amqtt_broker
from amqtt.broker import Broker
from amqtt.errors import MQTTError
from amqtt.events import MQTTEvents
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session


class SkyHiveBroker(Broker):  # type: ignore[misc]
    _access: Any = None  # the DeviceAccessPlugin, once looked up

    async def _topic_filtering(self, session: Session, topic: str, action: Any) -> bool:
        """Every message is checked on publish and again per subscriber on delivery; amqtt
        would wrap each check in a task (about 40 µs of CPU). When SkyHive's access plugin is
        the only topic plugin, it is asked directly."""
        if self._access is None:
            from skyhive.adapters.amqtt_auth import DeviceAccessPlugin

            plugins = list(getattr(self.plugins_manager, "_topic_plugins", ()))
            only = len(plugins) == 1 and isinstance(plugins[0], DeviceAccessPlugin)
            self._access = plugins[0] if only else False
        if self._access:
            return bool(self._access.allows(session, topic, action))
        return bool(await super()._topic_filtering(session, topic, action))

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


class AuthenticateFirst(BrokerProtocolHandler):  # type: ignore[misc]
    @classmethod
    async def init_from_connect(
        cls, reader: Any, writer: Any, plugins_manager: Any, loop: Any = None
    ) -> tuple[BrokerProtocolHandler, Session]:
        handler, session = await super().init_from_connect(reader, writer, plugins_manager, loop)
        answers = await plugins_manager.map_plugin_auth(session=session)
        results = [r for r in answers.values() if r is not None]
        if results and all(results):
            return handler, session
        connack = ConnackPacket.build(0, NOT_AUTHORIZED)
        await plugins_manager.fire_event(MQTTEvents.PACKET_SENT, packet=connack)
        await connack.to_stream(writer)
        await writer.close()
        raise MQTTError("not authorized")


def main() -> None:
    """``python -c 'from skyhive.adapters.amqtt_broker import main; main()' -c CONFIG``."""
    import uvloop  # the broker is the busiest process of the embedded stack

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from amqtt.scripts import broker_script

    amqtt_broker.BrokerProtocolHandler = AuthenticateFirst  # type: ignore[misc]
    broker_script.Broker = SkyHiveBroker  # type: ignore[misc]
    broker_script.main()
