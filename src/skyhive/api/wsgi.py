"""The API for a WSGI server other than `skyhive api`'s waitress: gunicorn in production
(``deploy/compose.yaml``), with gunicorn's factory form, so the app is built in each worker
after the fork, never in the master (pymongo's clients must not cross a fork)::

    gunicorn --worker-class gthread --workers 1 --threads 8 'skyhive.api.wsgi:create()'

Nothing connects at import or in :func:`create` (the clients are lazy, as ``create_app``
promises); the stores are reached on the first request that needs them.

What waitress did in ``api/server.py`` that this app does itself: the body limits per route
(``api/body_limit.py`` checks the decoded length whatever server runs it) and, behind a
reverse proxy (``SKYHIVE_HTTP__TRUSTED_PROXY``), the client's address and scheme from
``X-Forwarded-For``/``-Proto`` (:class:`TrustedProxy`), believed only from that proxy. What it
leaves to the proxy in front: the deadlines on slow clients (gunicorn's threads wait for a
half-sent request; a buffering proxy never hands one on). See docs/deployment.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from skyhive.settings import HttpConfig, Settings, load_settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class TrustedProxy:
    """``X-Forwarded-For`` and ``X-Forwarded-Proto`` believed only on requests whose peer is
    the trusted proxy (``"*"``: any peer), as waitress's ``trusted_proxy`` does: the last
    ``count`` hops give the client's address and the scheme. From anyone else the headers are
    left as sent, and ignored."""

    def __init__(self, app: WSGIApplication, proxy: str, count: int = 1) -> None:
        self._app = app
        self._fixed = ProxyFix(app, x_for=count, x_proto=count)
        self._proxy = proxy

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self._proxy == "*" or environ.get("REMOTE_ADDR") == self._proxy:
            return self._fixed(environ, start_response)
        return self._app(environ, start_response)


def behind_proxy(app: Flask, http: HttpConfig) -> Flask:
    """``app`` reading the client from the forwarding headers of ``http.trusted_proxy``, if
    one is set; unchanged otherwise."""
    if http.trusted_proxy:
        app.wsgi_app = TrustedProxy(  # type: ignore[method-assign]
            app.wsgi_app, http.trusted_proxy, http.trusted_proxy_count
        )
    return app


def create(settings: Settings | None = None) -> Flask:
    """The API app from the environment's ``SKYHIVE_*`` settings (or ``settings``), with its
    clients built up front (``prebuilt_clients``: the worker's threads must not race to
    build them), behind the trusted proxy if one is configured."""
    from skyhive.api import create_app
    from skyhive.api.server import prebuilt_clients

    settings = settings if settings is not None else load_settings()
    return behind_proxy(create_app(settings, prebuilt_clients(settings)), settings.http)
