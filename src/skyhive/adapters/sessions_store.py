"""Dashboard sessions in Redis: ``session:{id}`` → the API key it was opened with and its CSRF
token, expiring after a day without use. Shared by every API process.

A session holds only the key's id: each request still checks that key (revoked or expired
keys end their sessions at once), and the key itself never leaves the login request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from skyhive.adapters.redis_client import RedisClient

SESSION_TTL_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    key_id: str
    csrf_token: str


def _key(session_id: str) -> str:
    return f"session:{session_id}"


class SessionStore:
    def __init__(self, r: RedisClient) -> None:
        self._r = r

    def open(self, key_id: str) -> Session:
        session = Session(secrets.token_urlsafe(32), key_id, secrets.token_urlsafe(32))
        self._r.hset(
            _key(session.session_id), mapping={"key_id": key_id, "csrf": session.csrf_token}
        )
        self._r.expire(_key(session.session_id), SESSION_TTL_S)
        return session

    def get(self, session_id: str) -> Session | None:
        if not session_id or len(session_id) > 64:
            return None
        pipe = self._r.pipeline()
        pipe.hgetall(_key(session_id))
        pipe.expire(_key(session_id), SESSION_TTL_S)  # a day after the last use
        found, _ = pipe.execute()
        if not found:
            return None
        fields = {k.decode(): v.decode() for k, v in found.items()}
        return Session(session_id, fields["key_id"], fields["csrf"])

    def close(self, session_id: str) -> None:
        self._r.delete(_key(session_id))
