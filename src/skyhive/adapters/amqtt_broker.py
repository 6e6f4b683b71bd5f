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
3. Unacknowledged means redelivered. amqtt forgets a QoS 1 message it sent a subscriber as
   soon as the wait for its PUBACK ends, acknowledged or not: when the gateway died with
   messages in flight (or took over 5 s to acknowledge), they were gone, although the drones
   had their PUBACKs. Here a message stays in the session's in-flight set until its PUBACK
   arrives (late ones included), so a persistent session gets it again when it reconnects, as
   MQTT 3.1.1 (4.4) requires. The gateway's writes are idempotent, so a redelivery is harmless.
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
from amqtt.mqtt.puback import PubackPacket
from amqtt.session import OUTGOING, Session

PUBACK_WAIT_S = 5  # amqtt's own; after it the message waits for a reconnection instead


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


class SkyHiveBrokerHandler(BrokerProtocolHandler):  # type: ignore[misc]
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

    async def _handle_qos1_message_flow(self, app_message: Any) -> None:
        """amqtt's outgoing QoS 1 flow, except that the message leaves the in-flight set only
        when acknowledged (fix 3 above); incoming messages are amqtt's."""
        if app_message.direction != OUTGOING:
            await super()._handle_qos1_message_flow(app_message)
            return
        packet_id = app_message.packet_id
        self.session.inflight_out.setdefault(packet_id, app_message)
        retry = app_message.publish_packet is not None
        publish_packet = app_message.build_publish_packet(dup=retry)
        await self._send_packet(publish_packet)
        app_message.publish_packet = publish_packet
        waiter: asyncio.Future[PubackPacket] = asyncio.Future()
        self._puback_waiters[packet_id] = waiter
        try:
            app_message.puback_packet = await asyncio.wait_for(waiter, timeout=PUBACK_WAIT_S)
        except TimeoutError:
            raise TimeoutError(
                f"no PUBACK for packet {packet_id} yet; kept for redelivery"
            ) from None
        finally:
            self._puback_waiters.pop(packet_id, None)
        self.session.inflight_out.pop(packet_id, None)

    async def handle_puback(self, puback: PubackPacket) -> None:
        """A PUBACK after its wait ended still settles the message."""
        packet_id = puback.variable_header.packet_id if puback.variable_header else None
        late = packet_id is not None and packet_id not in self._puback_waiters
        if late and self.session.inflight_out.pop(packet_id, None) is not None:
            return
        await super().handle_puback(puback)


def main() -> None:
    """``python -c 'from skyhive.adapters.amqtt_broker import main; main()' -c CONFIG``."""
    import uvloop  # the broker is the busiest process of the embedded stack

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from amqtt.scripts import broker_script

    amqtt_broker.BrokerProtocolHandler = SkyHiveBrokerHandler  # type: ignore[misc]
    broker_script.Broker = SkyHiveBroker  # type: ignore[misc]
    broker_script.main()
