"""Device and service access control inside the embedded amqtt broker.

One plugin is both amqtt's authentication and its topic check (the embedded broker,
``amqtt_broker``, calls the check directly per message). It reads the credential store,
MongoDB ``mqtt_credentials``, directly with pymongo in a worker thread:

- CONNECT looks the username up afresh, so a new or rotated password works at once and a
  revoked one is refused at once, whoever changed it (CLI, API, another host);
- every ``refresh_s`` the plugin reads the credentials changed since its last look; a live
  session whose password was rotated or revoked is then allowed nothing (no publish, no
  delivery), so a stolen credential stops working within seconds without a reconnect;
- the per-message checks are in memory: the session's grant, set at CONNECT.

A file kept current by the supervisor was the alternative; it would add a hop (MongoDB →
supervisor → file → broker), lag rotations by the supervisor's poll, and not exist when the
credentials are changed while no supervisor runs.

amqtt queues QoS 1 messages for a disconnected persistent session only if the session is not
anonymous, so every client with a username is marked non-anonymous: the gateway's messages
wait for it while it restarts. With ``insecure_devices``, a client presenting no password is
let in with open access (a quick test with any MQTT client); one presenting a password is
still checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from amqtt.contexts import Action, BaseContext
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from skyhive.adapters import mongo
from skyhive.adapters.credentials_repo import CredentialsRepo, now_ms
from skyhive.domain.device_access import OPEN_GRANT, Grant, grant_for, verify_password
from skyhive.ports.credentials import Credential

log = logging.getLogger(__name__)

ADMISSION = "skyhive.admission"  # keys in Session.attributes
CHECKED = "skyhive.checked"  # (username, password) this CONNECT was authenticated with
CLOCK_SKEW_MS = 10_000  # writers on other hosts: re-read this far back on every poll


@dataclass(frozen=True, slots=True)
class _Admission:
    grant: Grant
    password_hash: str | None  # the hash it authenticated against (None: open access)
    changed_ms: int = 0


class DeviceAccessPlugin(BaseAuthPlugin, BaseTopicPlugin):  # type: ignore[misc]
    @dataclass
    class Config:
        mongodb_uri: str = ""  # empty: no credential store (only insecure, password-less access)
        mongodb_db: str = "skyhive"
        insecure_devices: bool = False
        refresh_s: float = 2.0

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        cfg: DeviceAccessPlugin.Config = self.config
        self._cfg = cfg
        self._client: MongoClient[mongo.Document] | None = None
        self._repo: CredentialsRepo | None = None
        if cfg.mongodb_uri:
            self._client = mongo.connect(cfg.mongodb_uri)
            self._repo = CredentialsRepo(self._client[cfg.mongodb_db])
        # username → (changed_ms, password hash or None), the newest seen by CONNECT or a poll.
        self._latest: dict[str, tuple[int, str | None]] = {}
        self._poller: asyncio.Task[None] | None = None
        if cfg.insecure_devices:
            log.warning(
                "INSECURE DEVICES: MQTT clients without a password are admitted with open access"
            )

    # -- authentication ------------------------------------------------------------------------

    async def authenticate(self, *, session: Session) -> bool:
        """Called twice per CONNECT (see ``amqtt_broker``): first on the new session, before
        amqtt acts on its client id, then by amqtt on the session it settled on (the existing
        one, for a persistent session). The second call on the same session is a no-op."""
        username, password = session.username, session.password
        if session.attributes.pop(CHECKED, None) == (username, password):
            return True
        who = f"client {session.client_id!r} (user {username!r})"
        admission = await self._admit(session, who)
        if admission is None:
            return False
        holder = self._holder(session)
        if holder is not None and holder.grant.username not in ("", admission.grant.username):
            # A client id, its subscriptions and its queue belong to one identity.
            log.info("refused %s: the client id belongs to another user's session", who)
            return False
        if admission.password_hash is not None:
            self._note(admission.grant.username, admission.changed_ms, admission.password_hash)
        session.attributes[ADMISSION] = admission
        session.attributes[CHECKED] = (username, password)
        session.is_anonymous = not username
        return True

    async def _admit(self, session: Session, who: str) -> _Admission | None:
        username, password = session.username, session.password
        if not password:
            if self._cfg.insecure_devices:
                return _Admission(OPEN_GRANT, None)
            log.info("refused %s: no password", who)
            return None
        if self._repo is None or not username:
            log.info("refused %s: no such user", who)
            return None
        self._start_poller()
        try:
            cred = await asyncio.to_thread(self._check, username, password)
        except PyMongoError as exc:
            log.warning("refused %s: credential store unavailable (%s)", who, type(exc).__name__)
            return None
        grant = grant_for(cred.username, cred.kind, cred.service) if cred else None
        if cred is None or grant is None:
            log.info("refused %s: bad username or password", who)
            return None
        return _Admission(grant, cred.password_hash, cred.changed_ms)

    def _holder(self, session: Session) -> _Admission | None:
        """The admission of the session already known under this client id, if any."""
        known = session
        get_session = getattr(self.context, "get_session", None)
        if get_session is not None and session.client_id:
            known = get_session(session.client_id) or session
        admission = known.attributes.get(ADMISSION)
        return admission if isinstance(admission, _Admission) else None

    def _check(self, username: str, password: str) -> Credential | None:
        assert self._repo is not None
        cred = self._repo.get(username)
        if cred is None or cred.password_hash is None:
            return None
        return cred if verify_password(password, cred.password_hash) else None

    # -- topics --------------------------------------------------------------------------------

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        return self.allows(session, topic, action)

    def allows(self, session: Session | None, topic: str | None, action: Action | None) -> bool:
        """The topic check, synchronous: ``amqtt_broker`` calls it directly per message,
        sparing amqtt's task-per-plugin dispatch."""
        if session is None or not topic:
            return False
        admission = session.attributes.get(ADMISSION)
        if not isinstance(admission, _Admission):
            return False
        grant = admission.grant
        if grant.open:
            return True
        latest = self._latest.get(grant.username)
        if latest is not None and latest[1] != admission.password_hash:
            return False  # rotated or revoked since this session authenticated
        if action == Action.PUBLISH:
            return grant.may_publish(topic)
        if action == Action.SUBSCRIBE:
            return grant.may_subscribe(topic)
        return grant.may_receive(topic)

    # -- rotation and revocation ---------------------------------------------------------------

    def _note(self, username: str, changed_ms: int, password_hash: str | None) -> None:
        current = self._latest.get(username)
        if current is None or changed_ms >= current[0]:
            self._latest[username] = (changed_ms, password_hash)

    def _start_poller(self) -> None:
        if self._poller is None and self._repo is not None:
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        repo = self._repo
        assert repo is not None
        since = now_ms() - CLOCK_SKEW_MS
        while True:
            await asyncio.sleep(self._cfg.refresh_s)
            started = now_ms()
            try:
                changed = await asyncio.to_thread(repo.changed_since, since)
            except PyMongoError as exc:
                log.warning("cannot read credential changes (%s); retrying", type(exc).__name__)
                continue
            for cred in changed:
                self._note(cred.username, cred.changed_ms, cred.password_hash)
            since = started - CLOCK_SKEW_MS

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._client is not None:
            self._client.close()
