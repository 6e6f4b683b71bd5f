"""The REST API: a Flask app factory over the shared clients.

Nothing connects at import or in :func:`create_app` (the clients are lazy), so an app can be
built, inspected and tested without MongoDB or Redis; stores are reached on first request.
"""

from __future__ import annotations

from flask import Flask
from flask_openapi3 import APIBlueprint, Info, OpenAPI

from skyhive import __version__
from skyhive.api.auth import install_auth
from skyhive.api.errors import ApiError, register_error_handlers
from skyhive.api.operation import app_validation_settings, check_json_body
from skyhive.api.ratelimit import install_limits
from skyhive.api.responses import EXTENSION_KEY
from skyhive.settings import Settings
from skyhive.wiring import Clients

__all__ = ["MAX_BODY_BYTES", "ApiError", "create_app"]

MAX_BODY_BYTES = 10 * 1024 * 1024


def create_app(settings: Settings | None = None, clients: Clients | None = None) -> Flask:
    """Build the app. ``clients`` defaults to new ones from ``settings`` (or the
    environment); pass your own to share connections or to point the app elsewhere."""
    # Imported here, not at module level: the blueprints import helpers from this package.
    from skyhive.api import (
        alerts,
        analytics,
        audit,
        bus,
        customers,
        dashboard,
        deadletters,
        deliveries,
        drones,
        fleet,
        forecasts,
        geofences,
        health,
        ingest,
        invoices,
        keys,
        login,
        openapi,
        overview,
        query,
        rebalancing,
        remote_id,
        revenue,
        session,
        stations,
        stream,
    )
    from skyhive.api.metrics import count_cache_read, init_metrics
    from skyhive.api.supervision_metrics import install_supervision_metrics  # issue 12

    if clients is None:
        clients = Clients(settings if settings is not None else Settings())
    info = Info(title="SkyHive API", version=__version__, description=openapi.DESCRIPTION)
    app = OpenAPI(__name__, info=info, **app_validation_settings())
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions[EXTENSION_KEY] = clients
    register_error_handlers(app)
    install_auth(app)
    install_limits(app)  # issue 11: rate, then body-size limits (api/ratelimit.py)
    app.before_request(check_json_body)  # after auth: strangers learn nothing of bodies
    init_metrics(app)
    install_supervision_metrics(clients.settings.data_dir)  # issue 12: `up`'s restarts
    clients.read_cache.on_result = count_cache_read
    blueprints = (
        drones,
        fleet,
        deliveries,
        customers,
        invoices,
        revenue,
        analytics,
        query,
        overview,
        alerts,
        geofences,
        stream,
        stations,
        forecasts,
        rebalancing,
        remote_id,
        deadletters,
        ingest,
        keys,
        audit,
        session,
        bus,
        health,
        openapi,
        login,
        dashboard,
    )
    for module in blueprints:
        if isinstance(module.bp, APIBlueprint):
            app.register_api(module.bp)
        else:
            app.register_blueprint(module.bp)
    return app
