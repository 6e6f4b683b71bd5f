"""Who may speak MQTT to SkyHive, and on which topics. Pure rules, no I/O.

- Passwords are random tokens, stored only as a hash in Mosquitto's own password-file format
  (``$7$<iterations>$<salt b64>$<PBKDF2-HMAC-SHA512 b64>``, what ``mosquitto_passwd`` writes),
  so one stored hash serves the embedded broker, HTTP ingest and a generated Mosquitto file.
- A drone is its ``drone_id``: it may publish only its own telemetry and events and subscribe
  only to its own commands, never with a wildcard.
- SkyHive's own processes are service users named ``skyhive.<service>``; a ``.`` is not
  allowed in a drone id, so no drone can be registered under a service's name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from skyhive.domain.telemetry import DRONE_ID_RE

# mosquitto_passwd's own count. The passwords are 192-bit random tokens, so stretching adds
# nothing against guessing; a low count keeps a fleet reconnecting after a broker restart cheap.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12  # as mosquitto_passwd
MAX_ITERATIONS = 1_000_000  # a stored hash asking for more is treated as malformed
PASSWORD_BYTES = 24  # secrets.token_urlsafe(24): 32 characters


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def hash_password(
    password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """The ``$7$`` hash Mosquitto's password file holds for ``password``."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` hashes to ``encoded`` (constant-time); False for a malformed hash."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7" or not parts[2].isdigit():
        return False
    iterations = int(parts[2])
    if not 0 < iterations <= MAX_ITERATIONS:
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except (binascii.Error, ValueError):
        return False
    actual = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return hmac.compare_digest(actual, expected)


# -- identities and topics ----------------------------------------------------------------------


class Service(StrEnum):
    """SkyHive's processes that speak MQTT (the simulator is a device, not a service)."""

    gateway = "gateway"  # reads every drone's telemetry and events
    dispatcher = "dispatcher"  # sends commands to any drone


SERVICE_PREFIX = "skyhive."


def service_username(service: Service) -> str:
    return f"{SERVICE_PREFIX}{service.value}"


def drone_topics(drone_id: str) -> tuple[str, str, str]:
    """(telemetry, events, commands) topics of one drone."""
    base = f"skyhive/drones/{drone_id}"
    return f"{base}/telemetry", f"{base}/events", f"{base}/commands"


def is_drone_username(username: str) -> bool:
    return DRONE_ID_RE.match(username) is not None


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT matching of a concrete topic against a filter (``+`` one level, ``#`` the rest)."""
    f_levels, t_levels = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(f_levels):
        if level == "#":
            return True
        if i >= len(t_levels) or (level != "+" and level != t_levels[i]):
            return False
    return len(f_levels) == len(t_levels)


def filter_covers(allowed: str, requested: str) -> bool:
    """Whether every topic ``requested`` (a subscription filter) can match is matched by
    ``allowed``: ``skyhive/drones/+/telemetry`` covers ``skyhive/drones/d1/telemetry`` but
    a concrete filter never covers ``+`` or ``#``."""
    a_levels, r_levels = allowed.split("/"), requested.split("/")
    for i, level in enumerate(a_levels):
        if level == "#":
            return True
        if i >= len(r_levels) or r_levels[i] == "#":
            return False
        if level != "+" and r_levels[i] != level:
            return False
    return len(a_levels) == len(r_levels)


def strip_shared(topic_filter: str) -> str | None:
    """``$share/<group>/<filter>`` → ``<filter>``; None if ``topic_filter`` is not shared."""
    if not topic_filter.startswith("$share/"):
        return None
    parts = topic_filter.split("/", 2)
    return parts[2] if len(parts) == 3 and parts[1] and parts[2] else ""


@dataclass(frozen=True, slots=True)
class Grant:
    """What one identity may do. ``publish``: filters it may publish to; ``read``: filters it
    may subscribe within (and receive from); ``shared``: it may subscribe as ``$share/…``."""

    username: str
    publish: tuple[str, ...] = ()
    read: tuple[str, ...] = ()
    shared: bool = False
    open: bool = False  # an unauthenticated client of a broker with insecure devices

    def may_publish(self, topic: str) -> bool:
        return self.open or any(topic_matches(f, topic) for f in self.publish)

    def may_subscribe(self, topic_filter: str) -> bool:
        if self.open:
            return True
        inner = strip_shared(topic_filter)
        if inner is not None:
            if not self.shared or not inner:
                return False
            topic_filter = inner
        return any(filter_covers(f, topic_filter) for f in self.read)

    def may_receive(self, topic: str) -> bool:
        return self.open or any(topic_matches(f, topic) for f in self.read)


OPEN_GRANT = Grant(username="", open=True)

_SERVICE_GRANTS: dict[Service, tuple[tuple[str, ...], tuple[str, ...], bool]] = {
    # (publish, read, shared subscriptions): several gateways share the ingest load.
    Service.gateway: ((), ("skyhive/drones/+/telemetry", "skyhive/drones/+/events"), True),
    Service.dispatcher: (("skyhive/drones/+/commands",), (), False),
}


def drone_grant(drone_id: str) -> Grant:
    if not is_drone_username(drone_id):
        raise ValueError(f"not a drone id: {drone_id!r}")
    telemetry, events, commands = drone_topics(drone_id)
    return Grant(username=drone_id, publish=(telemetry, events), read=(commands,))


def service_grant(service: Service) -> Grant:
    publish, read, shared = _SERVICE_GRANTS[service]
    return Grant(username=service_username(service), publish=publish, read=read, shared=shared)


def grant_for(username: str, kind: str, service: str | None) -> Grant | None:
    """The grant of a stored credential; None if the record makes no sense (refuse it)."""
    if kind == "drone" and is_drone_username(username):
        return drone_grant(username)
    if kind == "service" and service is not None and service in Service.__members__:
        svc = Service(service)
        if username == service_username(svc):
            return service_grant(svc)
    return None


# -- Mosquitto's files --------------------------------------------------------------------------


def _check_mosquitto_username(username: str) -> None:
    # ':' separates the password file's fields; whitespace would split an ACL line.
    if not username or any(c in username for c in ": \t\r\n") or not username.isprintable():
        raise ValueError(f"username {username!r} cannot be written to a Mosquitto file")


def mosquitto_password_file(entries: Iterable[tuple[str, str]]) -> str:
    """``username:hash`` lines, as ``mosquitto_passwd`` writes them."""
    lines = []
    for username, password_hash in sorted(entries):
        _check_mosquitto_username(username)
        if "\n" in password_hash or ":" in password_hash:
            raise ValueError(f"malformed hash for {username!r}")
        lines.append(f"{username}:{password_hash}\n")
    return "".join(lines)


def mosquitto_acl_file(grants: Iterable[Grant], insecure_devices: bool = False) -> str:
    """Mosquitto's ACL file for these grants. Lines before the first ``user`` apply to
    anonymous clients: none, unless devices are insecure (then anonymous clients may do
    anything, as on the embedded broker)."""
    out = ["# Generated by `skyhive broker mosquitto-config`; do not edit by hand.\n"]
    if insecure_devices:
        out.append("# INSECURE DEVICES: anonymous clients may publish and read anything.\n")
        out.append("topic readwrite #\n")
    for grant in sorted(grants, key=lambda g: g.username):
        if grant.open:
            continue
        _check_mosquitto_username(grant.username)
        out.append(f"\nuser {grant.username}\n")
        out.extend(f"topic write {f}\n" for f in grant.publish)
        out.extend(f"topic read {f}\n" for f in grant.read)
    return "".join(out)


# Mosquitto keeps queued QoS 1 messages in memory and writes them all to its database file
# only every ``autosave_interval`` seconds (and at a clean shutdown): a `kill -9` loses what
# arrived since the last save, after Mosquitto had acknowledged it. One second keeps that
# window short; each save rewrites the whole file, so its cost grows with the backlog.
# ``max_queued_messages``: a stopped gateway's session queues up to a million readings
# (Mosquitto's default of 1000 drops the rest, acknowledged; 0, unlimited, makes Debian's
# 2.0.11 drop a client whose publish the ACL denies). See docs/architecture.md, "The broker".
MOSQUITTO_AUTOSAVE_S = 1
MOSQUITTO_MAX_QUEUED = 1_000_000
# QoS 1 messages Mosquitto sends a client before it waits for PUBACKs (its default: 20). The
# gateway acknowledges a batch only once it is on the bus (up to 500 readings, the default
# SKYHIVE_GATEWAY_BATCH_SIZE), so the window holds two batches: one being written while the
# next fills. At 20 the gateway would write batches of 20 and a burst would drain at a
# fraction of what the bus takes.
MOSQUITTO_MAX_INFLIGHT = 1000


def mosquitto_durability_conf(
    persistence_dir: str | None = None, autosave_s: int = MOSQUITTO_AUTOSAVE_S
) -> str:
    """The mosquitto.conf lines that keep acknowledged, queued messages across a restart.
    Without ``persistence_dir`` the installation's own ``persistence_location`` is used
    (Debian's mosquitto.conf sets one, and Mosquitto refuses a second)."""
    location = ""
    if persistence_dir is not None:
        # Mosquitto appends the file name to the location as given.
        location = f"persistence_location {persistence_dir.rstrip('/')}/\n"
    return (
        "persistence true\n"
        f"{location}"
        f"autosave_interval {autosave_s}\n"
        "autosave_on_changes false\n"
        f"max_queued_messages {MOSQUITTO_MAX_QUEUED}\n"
    )


def mosquitto_limits_conf(max_inflight: int = MOSQUITTO_MAX_INFLIGHT) -> str:
    """The flow-control line for a gateway draining a burst (the queue's bound is in
    ``mosquitto_durability_conf``): ``max_inflight_messages`` per client."""
    return f"max_inflight_messages {max_inflight}\n"


def mosquitto_embedded_conf(
    *,
    host: str,
    port: int,
    password_file: str,
    acl_file: str,
    persistence_dir: str,
    insecure_devices: bool,
    run_as_root: bool,
    max_inflight: int = MOSQUITTO_MAX_INFLIGHT,
) -> str:
    """The whole mosquitto.conf `skyhive up` runs Mosquitto with: one listener, the password
    and ACL files generated from the credential store (re-read on SIGHUP), persistence, and
    the queue and in-flight limits. With ``insecure_devices`` clients without a username are
    let in, and the ACL file gives them every topic."""
    return (
        "# Generated by `skyhive up`; rewritten at every start.\n"
        "per_listener_settings false\n"
        f"listener {port} {host}\n"
        f"allow_anonymous {'true' if insecure_devices else 'false'}\n"
        f"password_file {password_file}\n"
        f"acl_file {acl_file}\n"
        f"{mosquitto_durability_conf(persistence_dir)}"
        f"{mosquitto_limits_conf(max_inflight)}"
        # Root would otherwise drop to the `mosquitto` user, who cannot read our files.
        f"{'user root' + chr(10) if run_as_root else ''}"
    )
