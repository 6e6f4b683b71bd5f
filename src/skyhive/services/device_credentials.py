"""MQTT credentials of drones and of SkyHive's own services: issue, rotate, revoke, verify,
and the Mosquitto files that enforce them on a production broker.

A password is shown once (returned to the caller) and stored only as a hash. Drones
authenticate as their ``drone_id``; services as ``skyhive.<service>`` with the password
`skyhive up` writes to the services file (mode 600) and its children read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from skyhive.domain.device_access import (
    Service,
    grant_for,
    hash_password,
    is_drone_username,
    mosquitto_acl_file,
    mosquitto_durability_conf,
    mosquitto_limits_conf,
    mosquitto_password_file,
    new_password,
    service_username,
    verify_password,
)
from skyhive.ports.credentials import Credential, CredentialStore, DeviceCheck, NewCredential
from skyhive.ports.drone_specs import DroneSpecs
from skyhive.settings import Settings

log = logging.getLogger(__name__)

SIMULATOR = "simulator"  # the source of credentials the simulator issued for its own drones


class CredentialPorts(Protocol):
    """What credential management needs (the composition root's ``Clients`` provides it)."""

    @property
    def credentials(self) -> CredentialStore: ...
    @property
    def device_verifier(self) -> DeviceCheck: ...
    @property
    def fleet(self) -> DroneSpecs: ...


class UnknownDrone(LookupError):
    """The drone is not in the fleet registry: no credentials without registration."""


class CredentialConflict(RuntimeError):
    """The simulator would rotate a credential someone else issued."""


# -- drones -------------------------------------------------------------------------------------


def issue_drone_password(clients: CredentialPorts, drone_id: str, source: str = "operator") -> str:
    """Create or rotate ``drone_id``'s MQTT password and return it (the only time it is
    seen). The old password stops working at once for new connections and within
    ``credentials_refresh_s`` for a connection already open. Raises ``UnknownDrone``."""
    if not is_drone_username(drone_id) or clients.fleet.get(drone_id) is None:
        raise UnknownDrone(drone_id)
    password = new_password()
    clients.credentials.put_many(
        [NewCredential(drone_id, "drone", hash_password(password), source)]
    )
    log.info("MQTT password issued for drone %s (%s)", drone_id, source)
    return password


def revoke_drone_password(clients: CredentialPorts, drone_id: str) -> bool:
    """Withdraw ``drone_id``'s password (e.g. when it is retired); True if it had one."""
    revoked = clients.credentials.revoke(drone_id)
    if revoked:
        log.info("MQTT password revoked for drone %s", drone_id)
    return revoked


def drone_credential(clients: CredentialPorts, drone_id: str) -> Credential | None:
    """The stored record (hash, when changed, who issued it), never the password."""
    cred = clients.credentials.get(drone_id)
    return cred if cred is not None and cred.kind == "drone" else None


def verify_device(clients: CredentialPorts, username: str, password: str) -> bool:
    """True when ``username`` is a drone and ``password`` is its current MQTT password.

    Cheap enough per HTTP request: the stored hash is cached for ``credentials_refresh_s``
    and a successful check for that hash is remembered, so the PBKDF2 runs once per
    password and rotation; a rotation or revocation takes effect within the refresh time."""
    return clients.device_verifier.verify(username, password)


def simulator_passwords(
    clients: CredentialPorts, drone_ids: Sequence[str], path: Path
) -> dict[str, str]:
    """Passwords for the simulator's (registered) drones, kept in ``path`` (mode 600) so a
    restarted simulator reuses them instead of rotating them. A drone whose kept password no
    longer verifies gets a new one; one whose credential an operator issued is refused
    (``CredentialConflict``): the simulator never takes over a real drone's identity."""
    kept = {k: v for k, v in _read_json(path).items() if isinstance(v, str)}
    stored = clients.credentials.get_many(drone_ids)
    foreign = [
        d for d, c in stored.items() if c.active and c.source != SIMULATOR and c.kind == "drone"
    ]
    if foreign:
        raise CredentialConflict(
            f"{len(foreign)} drone(s) have credentials an operator issued (e.g. {foreign[0]!r}); "
            "the simulator will not rotate them: choose another --id-prefix"
        )
    known = set(clients.fleet.specs(drone_ids))
    missing = [d for d in drone_ids if d not in known]
    if missing:
        raise UnknownDrone(missing[0])
    out: dict[str, str] = {}
    new: list[NewCredential] = []
    for drone_id in drone_ids:
        cred, password = stored.get(drone_id), kept.get(drone_id)
        if (
            cred
            and cred.password_hash
            and password
            and verify_password(password, cred.password_hash)
        ):
            out[drone_id] = password
            continue
        password = new_password()
        out[drone_id] = password
        new.append(NewCredential(drone_id, "drone", hash_password(password), SIMULATOR))
    clients.credentials.put_many(new)
    if new or set(kept) != set(out):
        write_private_json(path, {**kept, **out})
    if new:
        log.info("MQTT passwords issued for %d simulated drones (kept in %s)", len(new), path)
    return out


# -- services -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MqttLogin:
    username: str
    password: str

    def __repr__(self) -> str:  # never print the password by accident
        return f"MqttLogin(username={self.username!r}, password=***)"


def ensure_service_credentials(clients: CredentialPorts, path: Path) -> dict[Service, MqttLogin]:
    """The services' logins: those in ``path`` that still verify against the store are kept;
    the others are issued now, stored hashed, and written to ``path`` (mode 600). Run by
    `skyhive up` (and the benchmarks) before the services start."""
    kept = _read_json(path)
    stored = clients.credentials.get_many([service_username(s) for s in Service])
    out: dict[Service, MqttLogin] = {}
    new: list[NewCredential] = []
    for service in Service:
        username = service_username(service)
        entry = kept.get(service.value)
        password = entry.get("password") if isinstance(entry, dict) else None
        cred = stored.get(username)
        if (
            isinstance(password, str)
            and cred is not None
            and cred.password_hash
            and cred.kind == "service"
            and verify_password(password, cred.password_hash)
        ):
            out[service] = MqttLogin(username, password)
            continue
        password = new_password()
        out[service] = MqttLogin(username, password)
        new.append(NewCredential(username, "service", hash_password(password), "up", service.value))
    if new:
        clients.credentials.put_many(new)
        doc = {s.value: {"username": m.username, "password": m.password} for s, m in out.items()}
        write_private_json(path, doc)
        log.info(
            "MQTT service credentials issued for %s (%s)", ", ".join(c.username for c in new), path
        )
    return out


def service_login(settings: Settings, service: Service) -> MqttLogin | None:
    """This service's MQTT login from the services file, or None when there is none (the
    broker then admits the process only if devices are insecure)."""
    entry = _read_json(settings.mqtt_services_path()).get(service.value)
    if not isinstance(entry, dict):
        return None
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(password, str) and username and password:
        return MqttLogin(username, password)
    return None


# -- Mosquitto ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MosquittoFiles:
    password_file: Path
    acl_file: Path
    conf: Path  # the lines to add to mosquitto.conf
    users: int


def _mosquitto_auth(
    creds: Sequence[Credential], insecure_devices: bool
) -> tuple[bytes, bytes, int]:
    """Mosquitto's password file and ACL file for these credentials, and how many users."""
    entries: list[tuple[str, str]] = []
    grants = []
    for c in creds:
        if not c.active:
            continue
        grant = grant_for(c.username, c.kind, c.service)
        if grant is None or c.password_hash is None:
            log.warning("skipping malformed MQTT credential %r", c.username)
            continue
        entries.append((c.username, c.password_hash))
        grants.append(grant)
    return (
        mosquitto_password_file(entries).encode(),
        mosquitto_acl_file(grants, insecure_devices).encode(),
        len(entries),
    )


def write_mosquitto_config(
    clients: CredentialPorts, out_dir: Path, insecure_devices: bool = False
) -> MosquittoFiles:
    """Mosquitto's password file and ACL file for every active credential, and a config
    snippet that points at them. Mosquitto reads them at start and on SIGHUP: regenerate and
    signal it after registering or rotating."""
    passwd, acl, users = _mosquitto_auth(clients.credentials.active(), insecure_devices)
    out_dir.mkdir(parents=True, exist_ok=True)
    password_file, acl_file, conf = out_dir / "passwd", out_dir / "acl", out_dir / "skyhive.conf"
    _write_private(password_file, passwd)
    _write_private(acl_file, acl)
    _write_private(
        conf,
        (
            "# Generated by `skyhive broker mosquitto-config`: add to mosquitto.conf.\n"
            "per_listener_settings false\n"
            f"allow_anonymous {'true' if insecure_devices else 'false'}\n"
            f"password_file {password_file.resolve()}\n"
            f"acl_file {acl_file.resolve()}\n"
            "# Keep acknowledged, queued messages across a broker crash (docs/architecture.md,\n"
            "# The broker); persistence_location stays the installation's own.\n"
            f"{mosquitto_durability_conf()}"
            "# Let the gateway drain a backlog in batches (domain/device_access.py).\n"
            f"{mosquitto_limits_conf()}"
        ).encode(),
    )
    return MosquittoFiles(password_file, acl_file, conf, users)


class CredentialStorePorts(Protocol):
    @property
    def credentials(self) -> CredentialStore: ...


class CredentialFeed(CredentialStore, Protocol):
    """The store, and what changed in it: what a broker's file keeper polls."""

    def changed_since(self, ms: int) -> list[Credential]: ...


class CredentialFeedPorts(Protocol):
    @property
    def credentials(self) -> CredentialFeed: ...


class MosquittoAuthFiles:
    """Keeps a running Mosquitto's password file and ACL file equal to the credential store
    (`skyhive up`). ``write`` renders both from every active credential and writes those whose
    content changed; ``refresh``, called every fraction of a second, first asks the store only
    for what changed in the last ``CHANGE_WINDOW_MS`` (indexed on ``changed_ms``; the window
    absorbs writers' clock skew) and renders again only when something there is new, and in
    any case every ``full_every_s``. Either returns True when a file changed: the caller then
    sends Mosquitto SIGHUP, on which it re-reads both files and re-checks the clients already
    connected."""

    CHANGE_WINDOW_MS = 10_000

    def __init__(self, out_dir: Path, insecure_devices: bool, full_every_s: float = 60.0) -> None:
        self.password_file = out_dir / "passwd"
        self.acl_file = out_dir / "acl"
        self.insecure_devices = insecure_devices
        self.users = 0
        self._full_every_ms = int(full_every_s * 1000)
        self._looked_ms = 0  # wall clock of the last look at the store
        self._full_ms = 0  # ... and of the last full rendering
        self._seen: dict[str, tuple[int, str | None]] = {}  # the last look's window

    def write(self, clients: CredentialStorePorts, now_ms: int) -> bool:
        """Render both files from the store; True if either changed on disk."""
        passwd, acl, self.users = _mosquitto_auth(
            clients.credentials.active(), self.insecure_devices
        )
        self._full_ms = now_ms
        changed = False
        for path, content in ((self.password_file, passwd), (self.acl_file, acl)):
            try:
                same = path.read_bytes() == content
            except OSError:
                same = False
            if not same:
                _write_private(path, content)
                changed = True
        return changed

    def refresh(self, clients: CredentialFeedPorts, now_ms: int) -> bool:
        """Look at what changed since the last look; render again if anything did (or the
        periodic full rendering is due). True if a file changed."""
        since = (self._looked_ms or now_ms) - self.CHANGE_WINDOW_MS
        window = {
            c.username: (c.changed_ms, c.password_hash)
            for c in clients.credentials.changed_since(since)
        }
        new = any(self._seen.get(u) != v for u, v in window.items())
        self._seen, self._looked_ms = window, now_ms
        if new or now_ms - self._full_ms >= self._full_every_ms:
            return self.write(clients, now_ms)
        return False


# -- files --------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def write_private_json(path: Path, data: Mapping[str, object]) -> None:
    _write_private(path, orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def _write_private(path: Path, content: bytes) -> None:
    """Write atomically, readable by the owner only (mode 600) from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
