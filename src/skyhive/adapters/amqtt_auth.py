"""Authentication plugin for the embedded amqtt broker.

amqtt drops QoS 1 messages for a disconnected persistent session when the session is
anonymous, and its stock plugin marks *every* client anonymous when anonymous access is on.
This plugin lets every client in (drones included) but marks only clients without a username
anonymous, so the gateway, which connects with one, gets its messages queued while it
restarts. Per-drone credentials and topic ACLs belong here when they come.
"""

from __future__ import annotations

from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session


class OpenAccessAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    async def authenticate(self, *, session: Session) -> bool:
        session.is_anonymous = not session.username
        return True
