"""One Redis or a Redis Cluster behind one face: the clients SkyHive makes, its Lua scripts, and
how a batch's keys are grouped into script calls.

**Clients.** ``connect`` makes a ``redis.Redis`` or, with ``SKYHIVE_REDIS_CLUSTER``, a
``redis.RedisCluster`` that finds the other nodes from the one named. Both speak the same
commands; a cluster pipeline sends each command to the master of its key's slot. redis-py's
cluster client connects as it is made; ours waits for its first command (``LazyCluster``), as
a single Redis's does, so a process starts, and answers 503, while the cluster is away.

**Scripts.** A ``LuaScript`` is made once, at import, and runs as a raw ``EVALSHA``: redis-py's
own ``Script`` cannot be pipelined on a cluster (its cluster pipeline refuses ``evalsha`` by
name), while the raw command is routed by its keys' slot like any other. Every connection
loads every script when it connects (``_load_scripts``, redis-py's connect hook), so a script
is on each server a connection reaches: after a restart or a failover the reconnection loads
them again, and no pipeline needs redis-py's ``SCRIPT EXISTS`` round trip before it runs.
A script called on its own also recovers from ``NOSCRIPT`` (an operator's ``SCRIPT FLUSH``).

**Slots.** Redis Cluster runs a command, a script included, only on keys of one hash slot
(else ``CROSSSLOT``). Every key a script touches together shares a hash tag: ``drone:{D1}``,
``seenslots:{D1}``, ``alertmem:{D1}`` and ``alertstate:{D1}`` are one drone's, hashed on
``D1``; the dispatch keys carry the commands stream's tag; a partition's lease its stream's.
A batch over many drones is cut by ``slot_groups``: one group on a single Redis (one script
call, as before), one per slot on a cluster.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

import redis
from redis._parsers.commands import CommandPolicies, RequestPolicy, ResponsePolicy
from redis.cluster import RedisCluster
from redis.commands.policies import BasePolicyResolver, PolicyResolver, StaticPolicyResolver
from redis.exceptions import NoScriptError, RedisClusterException

RedisClient = redis.Redis | RedisCluster
T = TypeVar("T")

_SCRIPTS: dict[str, bytes] = {}  # sha1 → text, every LuaScript made


class LuaScript:
    """A Lua script, loaded on every connection SkyHive makes (see the module docstring)."""

    def __init__(self, text: str) -> None:
        self.text = text.encode()
        self.sha = hashlib.sha1(self.text).hexdigest()
        _SCRIPTS[self.sha] = self.text

    def __call__(self, client: Any, keys: Sequence[Any], args: Iterable[Any] = ()) -> Any:
        """Run it on ``client``, a client or a pipeline of one (then it is queued there)."""
        argv = (self.sha, len(keys), *keys, *args)
        try:
            return client.execute_command("EVALSHA", *argv)
        except NoScriptError:  # never from a pipeline: it only queues the call
            client.script_load(self.text)
            return client.execute_command("EVALSHA", *argv)


def _load_scripts(connection: Any) -> None:
    """Load every script on a new connection's server (pipelined: one round trip)."""
    scripts = list(_SCRIPTS.values())
    if scripts:
        connection.send_packed_command(
            connection.pack_commands([("SCRIPT", "LOAD", s) for s in scripts])
        )
        for _ in scripts:
            connection.read_response()


def _on_connect(connection: Any) -> None:
    connection.on_connect()
    _load_scripts(connection)


class _ScriptRouting(BasePolicyResolver):
    """``EVALSHA`` routed by its keys, which it names itself. Without a policy for it, redis-py
    8.1's cluster pipeline asks the server for every queued call's keys (``COMMAND GETKEYS``,
    a round trip each: 40 % of the processor's time on a cluster, by py-spy)."""

    _KEYED = CommandPolicies(
        request_policy=RequestPolicy.DEFAULT_KEYED, response_policy=ResponsePolicy.DEFAULT_KEYED
    )

    def __init__(self, fallback: PolicyResolver | None = None) -> None:
        super().__init__({"core": {"evalsha": self._KEYED}}, fallback or StaticPolicyResolver())

    def with_fallback(self, fallback: PolicyResolver) -> PolicyResolver:
        return _ScriptRouting(fallback)


class _Cluster(RedisCluster):
    def on_connect(self, connection: Any) -> None:
        super().on_connect(connection)  # type: ignore[no-untyped-call]
        _load_scripts(connection)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)  # type: ignore[no-untyped-call]
        pipe._policy_resolver = self._policy_resolver  # redis-py 8.1 does not pass it on
        return pipe


class LazyCluster:
    """A cluster client made at its first use, and made again at the next use after that
    failed: until then nothing connects. Unreachable nodes are a ``redis.ConnectionError``,
    like a single Redis's (redis-py's own ``RedisClusterException`` is not a ``RedisError``)."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self._url, self._options = url, options
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()

    def _made(self) -> RedisCluster:
        with self._lock:
            if self._client is None:
                try:
                    self._client = _Cluster.from_url(
                        self._url, policy_resolver=_ScriptRouting(), **self._options
                    )
                except RedisClusterException as exc:
                    raise redis.ConnectionError(str(exc)) from exc
            return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._made(), name)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                nodes: list[Any] = self._client.get_nodes()  # type: ignore[no-untyped-call]
                self._client.close()
                for node in nodes:  # close() leaves the nodes' pools connected
                    if node.redis_connection is not None:
                        node.redis_connection.connection_pool.disconnect()
                self._client = None


def connect(url: str, *, cluster: bool, **options: Any) -> RedisClient:
    """A client of the Redis at ``url``, or of the cluster one of whose nodes it names."""
    if cluster:
        return cast(RedisCluster, LazyCluster(url, options))
    return redis.Redis.from_url(url, redis_connect_func=_on_connect, **options)


class ClusterModeMismatch(RuntimeError):
    pass


def check_mode(client: Any) -> None:
    """Refuse a single-Redis client on a cluster node: its first multi-slot command would fail
    far from the cause (``MOVED``). The other way round redis-py refuses itself ("Cluster
    mode is not enabled on this node")."""
    if not is_cluster(client) and int(client.info("cluster").get("cluster_enabled", 0)):
        raise ClusterModeMismatch(
            "SKYHIVE_REDIS_URL names a node of a Redis Cluster: set SKYHIVE_REDIS_CLUSTER=true"
        )


def is_cluster(client: Any) -> bool:
    return isinstance(client, (RedisCluster, LazyCluster))


def masters(client: Any) -> list[Any]:
    """A client per master: ``client`` itself on a single Redis, else one per primary (for
    what redis-py sends to one node of a cluster unless told: INFO, CONFIG, PUBSUB...)."""
    if is_cluster(client):
        return [client.get_redis_connection(n) for n in client.get_primaries()]
    return [client]


def slot_groups(client: Any, items: Iterable[T], key_of: Callable[[T], str]) -> list[list[T]]:
    """``items`` cut so that each part's keys (``key_of``) can go in one script call: all of
    them on a single Redis, those of one hash slot each on a cluster (in first-seen order)."""
    items = list(items)
    if not items:
        return []
    if not is_cluster(client):
        return [items]
    slot_of: Callable[[str], int] = client.keyslot
    groups: dict[int, list[T]] = {}
    for item in items:
        groups.setdefault(slot_of(key_of(item)), []).append(item)
    return list(groups.values())


def hash_tag(key: str) -> str:
    """The part of ``key`` Redis Cluster hashes: within its first ``{…}`` if not empty, else
    all of it (so ``{tag}`` names the slot of ``key``)."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key
