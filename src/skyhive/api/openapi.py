"""The OpenAPI 3.1 description of this API, written by hand and served at
``/api/v1/openapi.json``.

Hand-written so it documents intent (units, ranges, defaults, why a 404 is or is not
returned) rather than whatever a generator can infer; a test checks that every route the app
registers is described here, so the two cannot drift apart silently.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response
from pydantic import BaseModel

from skyhive import __version__
from skyhive.api.alerts import ALERT_STATES, AlertAction
from skyhive.api.deliveries import DELIVERY_STATUSES
from skyhive.api.drones import (
    CHART_FIELDS,
    DEFAULT_RADIUS_KM,
    MAX_BUCKET_S,
    MAX_RADIUS_KM,
    MIN_RADIUS_KM,
    DroneCommand,
)
from skyhive.api.fleet import REGISTRY_STATUSES
from skyhive.api.geofences import ACTIVE_VALUES
from skyhive.api.ingest import MAX_ERRORS_LISTED, MAX_ITEMS
from skyhive.api.invoices import INVOICE_STATUSES, PaymentRequest
from skyhive.api.params import DEFAULT_LIMIT, MAX_LIMIT
from skyhive.api.responses import json_response
from skyhive.api.revenue import GROUPS as REVENUE_GROUPS
from skyhive.api.stream import KEEPALIVE_S, MAX_STREAM_CLIENTS, RETRY_MS
from skyhive.domain.alert_config import ALERT_TYPES
from skyhive.domain.customers import CustomerCreate, CustomerPatch
from skyhive.domain.deliveries import ID_PATTERN, DeliveryRequest
from skyhive.domain.fleet import DroneSpec, DroneSpecPatch
from skyhive.domain.geofence import ID_PATTERN as GEOFENCE_ID_PATTERN
from skyhive.domain.geofence import Geofence, GeofenceSpec
from skyhive.domain.telemetry import DRONE_ID_RE

bp = Blueprint("openapi", __name__)

Schema = dict[str, Any]

DRONE_STATUSES = ["idle", "in_flight", "charging", "returning", "emergency"]
RFC3339_OR_EPOCH_MS = (
    "RFC 3339 timestamp with an offset (e.g. `2025-01-31T12:00:00Z`; send `+` as `%2B`) "
    "or integer epoch milliseconds."
)


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _list_of(item: str, **extra: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["items", "count", *extra],
        "properties": {
            "items": {"type": "array", "items": _ref(item)},
            "count": {"type": "integer", "minimum": 0, "description": "Length of `items`."},
            **extra,
        },
    }


def _body(schema: str, description: str) -> Schema:
    return {
        "required": True,
        "description": description,
        "content": {"application/json": {"schema": _ref(schema)}},
    }


def _from_model(model: type[BaseModel], description: str) -> dict[str, Schema]:
    """A request body schema generated from its domain model, so the documented limits are
    the enforced ones; nested models become components of their own."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    nested: dict[str, Schema] = schema.pop("$defs", {})
    return {model.__name__: {**schema, "description": description}, **nested}


def _error(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}


def _param(name: str) -> Schema:
    return {"$ref": f"#/components/parameters/{name}"}


def _op(
    op_id: str,
    summary: str,
    tag: str,
    ok: Schema,
    *errors: str,
    params: list[Schema] | None = None,
    status: str = "200",
    uses_stores: bool = True,
    **more: Any,
) -> Schema:
    """An operation; any may answer 500, and one that reads a store 503 when it is down."""
    responses: Schema = {status: ok}
    for name in errors:
        responses[_ERROR_STATUS[name]] = _error(name)
    if uses_stores:
        responses["503"] = _error("Unavailable")
    responses["500"] = _error("InternalError")
    op: Schema = {"operationId": op_id, "summary": summary, "tags": [tag], "responses": responses}
    if params:
        op["parameters"] = params
    op.update(more)
    return op


_ERROR_STATUS = {
    "BadRequest": "400",
    "NotFound": "404",
    "Conflict": "409",
    "TooLarge": "413",
    "UnsupportedMediaType": "415",
    "Unprocessable": "422",
    "Unavailable": "503",
}

_NUM = {"type": ["number", "null"]}

_DRONE_STATE_PROPS: Schema = {
    "drone_id": {"type": "string", "pattern": DRONE_ID_RE.pattern},
    "seq": {"type": ["integer", "null"], "description": "Sequence number of the reading."},
    "ts": {"type": ["string", "null"], "format": "date-time", "description": "Event time."},
    "lat": {**_NUM, "minimum": -90, "maximum": 90},
    "lon": {**_NUM, "minimum": -180, "maximum": 180},
    "alt_m": {**_NUM, "description": "Altitude, metres."},
    "speed_mps": {**_NUM, "description": "Ground speed, m/s."},
    "heading_deg": {**_NUM, "description": "Heading, degrees from north."},
    "battery_pct": {**_NUM, "minimum": 0, "maximum": 100},
    "payload_kg": _NUM,
    "status": _nullable({"type": "string", "enum": DRONE_STATUSES}),
    "emergency": {"type": "boolean"},
    "delivery_id": {"type": ["string", "null"]},
    "updated_at": {
        "type": ["string", "null"],
        "format": "date-time",
        "description": "When the platform applied the reading (processing time).",
    },
}

SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "integer", "description": "The HTTP status."},
                    "message": {"type": "string"},
                    "field": {
                        "type": "string",
                        "description": "The parameter at fault, when there is one.",
                    },
                },
            }
        },
    },
    "Telemetry": {
        "type": "object",
        "description": "Telemetry message v1. Unknown fields are kept as given (their names "
        "may not start with `$` or contain `.`).",
        "required": ["drone_id", "ts", "battery_pct"],
        "additionalProperties": True,
        "properties": {
            "drone_id": {
                "type": "string",
                "pattern": DRONE_ID_RE.pattern,
                "description": "Required over HTTP (over MQTT it may come from the topic).",
            },
            "seq": {
                "type": "integer",
                "minimum": 0,
                "maximum": 2**63 - 1,
                "description": "Per-drone sequence number, the idempotency key with "
                "`drone_id`. Defaults to `ts` in epoch milliseconds.",
            },
            "ts": {
                "description": "Event time, 2000-01-01 to 2100-01-01. " + RFC3339_OR_EPOCH_MS,
                "oneOf": [
                    {"type": "string", "format": "date-time"},
                    {"type": "integer", "description": "Epoch milliseconds."},
                ],
            },
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "lon": {"type": "number", "minimum": -180, "maximum": 180},
            "alt_m": {"type": "number", "minimum": -500, "maximum": 20000},
            "speed_mps": {"type": "number", "minimum": 0, "maximum": 200},
            "heading_deg": {"type": "number", "minimum": 0, "maximum": 360},
            "battery_pct": {"type": "number", "minimum": 0, "maximum": 100},
            "status": {"type": "string", "enum": DRONE_STATUSES},
            "emergency": {"type": "boolean", "default": False},
            "delivery_id": {"type": "string", "maxLength": 128},
            "payload_kg": {"type": "number", "minimum": 0, "maximum": 1000},
        },
    },
    "DroneState": {
        "type": "object",
        "description": "The latest reading of a drone (by event time, then seq).",
        "required": ["drone_id", "emergency"],
        "properties": _DRONE_STATE_PROPS,
    },
    "NearbyDrone": {
        "allOf": [
            _ref("DroneState"),
            {
                "type": "object",
                "required": ["distance_km"],
                "properties": {"distance_km": {"type": "number", "minimum": 0}},
            },
        ]
    },
    "TelemetryRecord": {
        "type": "object",
        "description": "A stored reading. Fields not in Telemetry v1 are under `extra`.",
        "required": ["id", "drone_id", "seq", "ts", "battery_pct"],
        "properties": {
            "id": {"type": "string", "description": "`{drone_id}:{seq}`."},
            **{k: v for k, v in _DRONE_STATE_PROPS.items() if k != "updated_at"},
            "ts": {"type": "string", "format": "date-time"},
            "extra": {"type": "object", "additionalProperties": True},
        },
    },
    "Alert": {
        "type": "object",
        "required": ["id", "drone_id", "type", "severity", "state", "opened_at"],
        "properties": {
            "id": {"type": "string"},
            "drone_id": {"type": "string"},
            "type": {"type": "string", "enum": list(ALERT_TYPES)},
            "severity": {"type": "string", "enum": ["warning", "critical"]},
            "state": {"type": "string", "enum": list(ALERT_STATES)},
            "opened_at": {"type": "string", "format": "date-time"},
            "last_seen": {"type": "string", "format": "date-time"},
            "count": {"type": "integer", "minimum": 0, "description": "Findings that fired it."},
            "details": {
                "type": "object",
                "additionalProperties": True,
                "description": "What the last finding saw: position, battery, and per type "
                "e.g. the zones entered, the station out of reach, the implied speed.",
            },
            "action": {
                "type": "object",
                "additionalProperties": True,
                "description": "An automatic action taken (cannot_reach_station: the drone "
                "was ordered to `station`).",
            },
            "acknowledged_by": {"type": "string"},
            "acknowledged_at": {"type": "string", "format": "date-time"},
            "ack_note": {"type": ["string", "null"]},
            "resolved_by": {"type": "string", "description": "`auto`, or who resolved it."},
            "resolved_at": {"type": "string", "format": "date-time"},
            "resolve_note": {"type": ["string", "null"]},
            "notifications": {
                "type": "array",
                "description": "Every notification attempt (one alert read only).",
                "items": {"type": "object", "additionalProperties": True},
            },
        },
    },
    "Station": {
        "type": "object",
        "required": ["code", "name", "lat", "lon"],
        "properties": {
            "code": {"type": "string"},
            "name": {"type": "string"},
            "lat": {"type": "number"},
            "lon": {"type": "number"},
            "pads": {"type": "integer", "minimum": 0},
            "chargers": {"type": "integer", "minimum": 0},
        },
    },
    "DeadLetter": {
        "type": "object",
        "required": ["id", "reason", "source", "received_at", "raw", "raw_bytes"],
        "properties": {
            "id": {"type": "string", "description": "Stream entry id; a paging cursor."},
            "reason": {"type": "string"},
            "source": {"type": "string", "examples": ["http", "mqtt:skyhive/drones/d1/telemetry"]},
            "received_at": {"type": "string", "format": "date-time"},
            "raw": {"type": "string", "description": "The payload (first 4 KiB, as UTF-8)."},
            "raw_bytes": {"type": "integer", "description": "Full size of the payload."},
        },
    },
    "IngestResult": {
        "type": "object",
        "required": ["accepted", "rejected", "errors", "errors_truncated"],
        "properties": {
            "accepted": {"type": "integer", "minimum": 0},
            "rejected": {"type": "integer", "minimum": 0},
            "errors": {
                "type": "array",
                "maxItems": MAX_ERRORS_LISTED,
                "items": {
                    "type": "object",
                    "required": ["index", "reason"],
                    "properties": {
                        "index": {"type": "integer", "description": "0-based item index."},
                        "line": {"type": "integer", "description": "1-based line (NDJSON)."},
                        "reason": {"type": "string"},
                    },
                },
            },
            "errors_truncated": {
                "type": "boolean",
                "description": f"More than {MAX_ERRORS_LISTED} items were rejected.",
            },
        },
    },
    **_from_model(
        DroneSpec,
        "A drone to register. `status` is the registry's (may it be dispatched at all), "
        "not the flight status reported in telemetry.",
    ),
    **_from_model(
        DroneSpecPatch,
        "Fields to change; absent or `null` fields keep their value. At least one is needed.",
    ),
    **_from_model(
        GeofenceSpec,
        "A no-fly zone to create, or to replace one with (PUT: fields left out take their "
        "defaults). It applies to a position inside or on the boundary of `geometry`, at an "
        "altitude in [`floor_m`, `ceiling_m`) (an unknown altitude counts as inside), at a "
        "time in [`active_from`, `active_until`) and, with `daily`, in [`start`, `end`) UTC "
        "each day (wrapping midnight when `end` is before `start`). Without `id` one is "
        "generated (`gf-…`).",
    ),
    **_from_model(Geofence, "A stored no-fly zone; times are UTC, to the millisecond."),
    **_from_model(AlertAction, "Who acts on an alert, and why."),
    **_from_model(
        DeliveryRequest,
        "A delivery order. Give `order_id` to make retries safe: the same `order_id` again "
        "returns the first delivery instead of creating another.",
    ),
    "Delivery": {
        "type": "object",
        "required": [
            "id",
            "customer_id",
            "pickup_station",
            "destination",
            "package",
            "status",
            "created_at",
            "timeline",
        ],
        "properties": {
            "id": {"type": "string", "description": "`ord-{order_id}`, or `dlv-…` without one."},
            "order_id": {"type": ["string", "null"]},
            "customer_id": {"type": "string"},
            "pickup_station": {"type": "string", "description": "Station code."},
            "destination": _ref("Point"),
            "package": _ref("Package"),
            "status": {"type": "string", "enum": list(DELIVERY_STATUSES)},
            "drone_id": {"type": ["string", "null"], "description": "Once assigned."},
            "return_station": {
                "type": ["string", "null"],
                "description": "Where the drone goes after the drop-off.",
            },
            "distance_km": {
                **_NUM,
                "description": "Great-circle distance, pickup station to destination.",
            },
            "price_estimate": {
                "type": ["string", "null"],
                "description": 'Decimal amount as a string (e.g. `"7.90"`), in `currency`.',
            },
            "currency": {"type": "string", "examples": ["USD"]},
            "eta": {"type": ["string", "null"], "format": "date-time"},
            "dispatch": {
                "type": ["object", "null"],
                "additionalProperties": True,
                "description": "How the drone was chosen, once assigned.",
            },
            "waiting_reason": {
                "type": ["string", "null"],
                "description": "Why a pending delivery has no drone yet.",
            },
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": ["string", "null"], "format": "date-time"},
            "timeline": {
                "type": "array",
                "description": "Every status the delivery went through, oldest first.",
                "items": {
                    "type": "object",
                    "required": ["status", "at"],
                    "properties": {
                        "status": {"type": "string", "enum": list(DELIVERY_STATUSES)},
                        "at": {"type": "string", "format": "date-time"},
                        "note": {"type": "string"},
                    },
                },
            },
        },
    },
    "DeliveryTracking": {
        "type": "object",
        "required": ["id", "status", "drone_id", "drone", "remaining_km"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": list(DELIVERY_STATUSES)},
            "drone_id": {"type": ["string", "null"]},
            "drone": _nullable(_ref("DroneState")),
            "remaining_km": {
                **_NUM,
                "description": "Flight distance still to go (via the pickup station while "
                "assigned); null unless the delivery is under way and the drone reports "
                "a position.",
            },
            "eta_seconds": {
                "type": "number",
                "description": "At cruise speed; present when `remaining_km` is.",
            },
            "eta": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "The stored ETA; present when `remaining_km` is null.",
            },
        },
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "checks": {
                "type": "object",
                "description": "`ok` or `error: ...` per dependency.",
                "properties": {
                    name: {"type": "string"} for name in ("mongodb", "redis", "mqtt", "bus")
                },
            },
        },
    },
}


SCHEMAS["RegisteredDrone"] = {
    "type": "object",
    "description": "A registered drone's spec.",
    "required": [*SCHEMAS["DroneSpec"]["properties"], "pct_per_km"],
    "properties": {
        **SCHEMAS["DroneSpec"]["properties"],
        "pct_per_km": {
            "type": "number",
            "description": "Battery percentage one km of cruise costs (consumption over "
            "capacity), to 4 decimals.",
        },
    },
}


def _error_response(description: str) -> Schema:
    return _json(_ref("Error"), description)


RESPONSES: dict[str, Schema] = {
    "BadRequest": _error_response("A parameter or the body is invalid; `field` names it."),
    "NotFound": _error_response("No such resource."),
    "TooLarge": _error_response(
        f"Body over 10 MiB or more than {MAX_ITEMS} items: split the upload."
    ),
    "Conflict": _error_response("The request conflicts with the resource's current state."),
    "UnsupportedMediaType": _error_response(
        "Content-Type is not one the operation takes: application/json (telemetry ingest "
        "also takes application/x-ndjson, application/ndjson and application/jsonl)."
    ),
    "Unprocessable": _error_response(
        "The JSON body breaks the schema or cannot be served; `field` is the dotted path "
        "of the first offending field (e.g. `package.size`)."
    ),
    "Unavailable": {
        **_error_response("MongoDB or Redis is unreachable; retry after `Retry-After`."),
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
    "InternalError": _error_response("Unexpected server error (logged)."),
}

PARAMETERS: dict[str, Schema] = {
    "DroneId": {
        "name": "drone_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": DRONE_ID_RE.pattern},
    },
    "Limit": {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    },
    "Lat": {
        "name": "lat",
        "in": "query",
        "required": True,
        "schema": {"type": "number", "minimum": -90, "maximum": 90},
    },
    "Lon": {
        "name": "lon",
        "in": "query",
        "required": True,
        "schema": {"type": "number", "minimum": -180, "maximum": 180},
    },
    "RadiusKm": {
        "name": "radius_km",
        "in": "query",
        "schema": {
            "type": "number",
            "minimum": MIN_RADIUS_KM,
            "maximum": MAX_RADIUS_KM,
            "default": DEFAULT_RADIUS_KM,
        },
    },
    "Since": {
        "name": "since",
        "in": "query",
        "description": "Inclusive lower bound on `ts`. " + RFC3339_OR_EPOCH_MS,
        "schema": {"type": "string"},
    },
    "Until": {
        "name": "until",
        "in": "query",
        "description": "Exclusive upper bound on `ts`; not before `since`. " + RFC3339_OR_EPOCH_MS,
        "schema": {"type": "string"},
    },
    "AlertId": {
        "name": "alert_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "maxLength": 200},
    },
    "AlertSeverity": {
        "name": "severity",
        "in": "query",
        "schema": {"type": "string", "enum": ["warning", "critical"]},
    },
    "AlertType": {
        "name": "type",
        "in": "query",
        "schema": {"type": "string", "enum": list(ALERT_TYPES)},
    },
    "AlertSince": {
        "name": "since",
        "in": "query",
        "description": "Only alerts seen at or after this time. " + RFC3339_OR_EPOCH_MS,
        "schema": {"type": "string"},
    },
    "AlertState": {
        "name": "state",
        "in": "query",
        "description": "Only alerts in this state (default: all states).",
        "schema": {"type": "string", "enum": list(ALERT_STATES)},
    },
    "DroneIdQuery": {
        "name": "drone_id",
        "in": "query",
        "description": "Only this drone's alerts.",
        "schema": {"type": "string", "pattern": DRONE_ID_RE.pattern},
    },
    "FleetLimit": {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": MAX_LIMIT},
    },
    "RegistryStatus": {
        "name": "status",
        "in": "query",
        "description": "Only drones with this registry status (default: all).",
        "schema": {"type": "string", "enum": list(REGISTRY_STATUSES)},
    },
    "DeliveryId": {
        "name": "delivery_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    },
    "DeliveryStatus": {
        "name": "status",
        "in": "query",
        "description": "Only deliveries in this status (default: all).",
        "schema": {"type": "string", "enum": list(DELIVERY_STATUSES)},
    },
    "CustomerIdQuery": {
        "name": "customer_id",
        "in": "query",
        "description": "Only this customer's deliveries.",
        "schema": {"type": "string", "pattern": ID_PATTERN},
    },
    "DeliveryDroneId": {
        "name": "drone_id",
        "in": "query",
        "description": "Only deliveries assigned to this drone.",
        "schema": {"type": "string", "pattern": DRONE_ID_RE.pattern},
    },
    "GeofenceId": {
        "name": "geofence_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": GEOFENCE_ID_PATTERN},
    },
    "GeofenceActive": {
        "name": "active",
        "in": "query",
        "description": "`true`: only zones in force now (enabled and within their time "
        "windows); `false`: only the others. Default: every zone.",
        "schema": {"type": "string", "enum": list(ACTIVE_VALUES)},
    },
    "Before": {
        "name": "before",
        "in": "query",
        "description": "Entries strictly older than this id (a previous `next_before`).",
        "schema": {"type": "string", "pattern": r"^\d+(-\d+)?$"},
    },
}

_TEXT = {"text/plain": {"schema": {"type": "string"}}}

PATHS: dict[str, Schema] = {
    "/api/v1/drones": {
        "get": _op(
            "listDrones",
            "Live state of every drone",
            "drones",
            _json(_list_of("DroneState"), "Every drone seen, by id."),
        )
    },
    "/api/v1/drones/nearby": {
        "get": _op(
            "nearbyDrones",
            "Drones within a radius of a point, nearest first",
            "drones",
            _json(
                _list_of("NearbyDrone", radius_km={"type": "number"}),
                "Drones with their distance in km.",
            ),
            "BadRequest",
            params=[_param("Lat"), _param("Lon"), _param("RadiusKm"), _param("Limit")],
        )
    },
    "/api/v1/drones/{drone_id}": {
        "get": _op(
            "getDrone",
            "Live state of one drone",
            "drones",
            _json(_ref("DroneState"), "The drone's latest reading."),
            "BadRequest",
            "NotFound",
            params=[_param("DroneId")],
        )
    },
    "/api/v1/drones/{drone_id}/telemetry": {
        "get": _op(
            "droneTelemetry",
            "Telemetry history of one drone, newest first",
            "drones",
            _json(
                _list_of("TelemetryRecord", drone_id={"type": "string"}),
                "Readings in the window (empty, not 404, for a drone without history).",
            ),
            "BadRequest",
            params=[_param("DroneId"), _param("Since"), _param("Until"), _param("Limit")],
        )
    },
    "/api/v1/fleet/drones": {
        "post": _op(
            "registerDrone",
            "Register a drone in the fleet",
            "fleet",
            _json(_ref("RegisteredDrone"), "Registered; `Location` is its URL."),
            "BadRequest",
            "Conflict",
            "TooLarge",
            "UnsupportedMediaType",
            "Unprocessable",
            status="201",
            description="409 when `drone_id` is already registered; 422 for a value out of "
            "range or a `home_station` that is not a known station.",
            requestBody=_body("DroneSpec", "The spec; omitted fields take their defaults."),
        ),
        "get": _op(
            "listFleet",
            "Registered drones, by id",
            "fleet",
            _json(_list_of("RegisteredDrone"), "Matching drones."),
            "BadRequest",
            params=[_param("RegistryStatus"), _param("FleetLimit")],
        ),
    },
    "/api/v1/fleet/drones/{drone_id}": {
        "get": _op(
            "getRegisteredDrone",
            "One registered drone's spec",
            "fleet",
            _json(_ref("RegisteredDrone"), "The spec."),
            "BadRequest",
            "NotFound",
            params=[_param("DroneId")],
        ),
        "patch": _op(
            "updateDrone",
            "Change some fields of a registered drone",
            "fleet",
            _json(_ref("RegisteredDrone"), "The spec after the change."),
            "BadRequest",
            "NotFound",
            "TooLarge",
            "UnsupportedMediaType",
            "Unprocessable",
            params=[_param("DroneId")],
            description="400 for a body with nothing to change; 422 for a value out of range "
            "or an unknown `home_station`.",
            requestBody=_body("DroneSpecPatch", "The fields to change."),
        ),
    },
    "/api/v1/deliveries": {
        "post": _op(
            "createDelivery",
            "Order a delivery",
            "deliveries",
            _json(_ref("Delivery"), "Created, pending dispatch; `Location` is its URL."),
            "BadRequest",
            "Conflict",
            "TooLarge",
            "UnsupportedMediaType",
            "Unprocessable",
            status="201",
            description="422 when the order cannot be served, with `field` at fault: "
            "`pickup_station` (unknown station), `destination` (outside the service radius "
            "of the pickup station), `package.weight_kg` (heavier than any active drone "
            "can lift). 409 when `order_id` was already used by another customer.",
            requestBody=_body("DeliveryRequest", "The order."),
        ),
        "get": _op(
            "listDeliveries",
            "Deliveries, newest first",
            "deliveries",
            _json(_list_of("Delivery"), "Matching deliveries."),
            "BadRequest",
            params=[
                _param("DeliveryStatus"),
                _param("CustomerIdQuery"),
                _param("DeliveryDroneId"),
                _param("Limit"),
            ],
        ),
    },
    "/api/v1/deliveries/{delivery_id}": {
        "get": _op(
            "getDelivery",
            "One delivery, with its timeline",
            "deliveries",
            _json(_ref("Delivery"), "The delivery."),
            "NotFound",
            params=[_param("DeliveryId")],
        )
    },
    "/api/v1/deliveries/{delivery_id}/track": {
        "get": _op(
            "trackDelivery",
            "Where the delivery's drone is and how far it still has to fly",
            "deliveries",
            _json(_ref("DeliveryTracking"), "The live position and remaining distance."),
            "NotFound",
            params=[_param("DeliveryId")],
        )
    },
    "/api/v1/deliveries/{delivery_id}/cancel": {
        "post": _op(
            "cancelDelivery",
            "Cancel a pending or assigned delivery",
            "deliveries",
            _json(
                _ref("Delivery"),
                "Cancelled; an assigned drone is sent back to a station.",
            ),
            "NotFound",
            "Conflict",
            params=[_param("DeliveryId")],
            description="409 once the package is picked up, or when the delivery is "
            "already finished; the message gives its current status.",
        )
    },
    "/api/v1/telemetry": {
        "post": _op(
            "ingestTelemetry",
            "Submit a batch of telemetry readings",
            "telemetry",
            _json(
                _ref("IngestResult"),
                "Accepted items are on the bus; rejected ones are dead-lettered with their "
                "reason and listed in `errors`.",
            ),
            "BadRequest",
            "TooLarge",
            "UnsupportedMediaType",
            status="202",
            requestBody={
                "required": True,
                "description": f"At most 10 MiB and {MAX_ITEMS} items.",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_ITEMS,
                            "items": _ref("Telemetry"),
                        }
                    },
                    "application/x-ndjson": {
                        "schema": {
                            "type": "string",
                            "description": "One Telemetry object per line; blank lines are "
                            "skipped and a line that is not JSON is rejected on its own.",
                        }
                    },
                },
            },
        )
    },
    "/api/v1/alerts": {
        "get": _op(
            "listAlerts",
            "Alerts, newest opened first",
            "alerts",
            _json(_list_of("Alert"), "Matching alerts."),
            "BadRequest",
            params=[
                _param("AlertState"),
                _param("DroneIdQuery"),
                _param("AlertSeverity"),
                _param("AlertType"),
                _param("AlertSince"),
                _param("Limit"),
            ],
        )
    },
    "/api/v1/alerts/{alert_id}": {
        "get": _op(
            "getAlert",
            "One alert, with every notification attempt made for it",
            "alerts",
            _json(_ref("Alert"), "The alert."),
            "NotFound",
            params=[_param("AlertId")],
        )
    },
    "/api/v1/alerts/{alert_id}/ack": {
        "post": _op(
            "acknowledgeAlert",
            "Acknowledge an open alert (stops its reminders)",
            "alerts",
            _json(_ref("Alert"), "Acknowledged."),
            "BadRequest",
            "NotFound",
            "Conflict",
            "UnsupportedMediaType",
            "Unprocessable",
            params=[_param("AlertId")],
            requestBody=_body("AlertAction", "Who acknowledges, and a note."),
            description="409 when the alert is not open (already acknowledged or resolved).",
        )
    },
    "/api/v1/alerts/{alert_id}/resolve": {
        "post": _op(
            "resolveAlert",
            "Resolve an open or acknowledged alert",
            "alerts",
            _json(_ref("Alert"), "Resolved."),
            "BadRequest",
            "NotFound",
            "Conflict",
            "UnsupportedMediaType",
            "Unprocessable",
            params=[_param("AlertId")],
            requestBody=_body("AlertAction", "Who resolves it, and a note."),
            description="409 when it is resolved already. If the condition persists, the "
            "next finding opens a new alert.",
        )
    },
    "/api/v1/stream/alerts": {
        "get": _op(
            "streamAlerts",
            "Alert changes as they happen (Server-Sent Events)",
            "alerts",
            {
                "description": f"An endless `text/event-stream`: `retry: {RETRY_MS}` first, "
                "then an `event: alert` frame per opened, escalated or otherwise changed "
                "alert, its `data` one Alert object as JSON; a `: keepalive` comment after "
                f"{KEEPALIVE_S:g} s without events. Only changes made while connected are "
                "sent: list the alerts first, then follow the stream.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "headers": {
                    "Cache-Control": {"schema": {"const": "no-cache"}},
                    "X-Accel-Buffering": {"schema": {"const": "no"}},
                },
            },
        )
    },
    "/api/v1/geofences": {
        "post": _op(
            "createGeofence",
            "Create a no-fly zone",
            "geofences",
            _json(_ref("Geofence"), "Created; `Location` is its URL."),
            "BadRequest",
            "Conflict",
            "TooLarge",
            "UnsupportedMediaType",
            "Unprocessable",
            status="201",
            description="422 naming the field for a body that breaks the schema, including "
            "a `geometry` that is not a valid polygon (ring not closed or under 4 positions, "
            "position out of range, self-intersection: the message gives the reason and "
            "where). 409 when `id` is taken. The processor applies the change within about "
            "a second.",
            requestBody=_body("GeofenceSpec", "The zone."),
        ),
        "get": _op(
            "listGeofences",
            "No-fly zones, by id",
            "geofences",
            _json(_list_of("Geofence"), "Matching zones."),
            "BadRequest",
            params=[_param("GeofenceActive")],
        ),
    },
    "/api/v1/geofences/{geofence_id}": {
        "get": _op(
            "getGeofence",
            "One no-fly zone",
            "geofences",
            _json(_ref("Geofence"), "The zone."),
            "BadRequest",
            "NotFound",
            params=[_param("GeofenceId")],
        ),
        "put": _op(
            "replaceGeofence",
            "Replace a no-fly zone",
            "geofences",
            _json(_ref("Geofence"), "The zone as replaced; `created_at` is kept."),
            "BadRequest",
            "NotFound",
            "TooLarge",
            "UnsupportedMediaType",
            "Unprocessable",
            params=[_param("GeofenceId")],
            description="As create, validated the same way; an `id` in the body must match "
            "the URL (else 422).",
            requestBody=_body("GeofenceSpec", "The whole zone."),
        ),
        "delete": _op(
            "deleteGeofence",
            "Delete a no-fly zone",
            "geofences",
            {"description": "Deleted."},
            "BadRequest",
            "NotFound",
            params=[_param("GeofenceId")],
            status="204",
        ),
    },
    "/api/v1/stations": {
        "get": _op(
            "listStations",
            "Stations the fleet flies from",
            "stations",
            _json(_list_of("Station"), "Every station, by code."),
        )
    },
    "/api/v1/deadletters": {
        "get": _op(
            "listDeadLetters",
            "Rejected messages, newest first",
            "deadletters",
            _json(
                _list_of(
                    "DeadLetter",
                    total={"type": "integer", "description": "Entries in the stream."},
                    next_before={
                        "type": ["string", "null"],
                        "description": "Pass as `before` for the next page; null at the end.",
                    },
                ),
                "A page of dead letters.",
            ),
            "BadRequest",
            params=[_param("Limit"), _param("Before")],
        )
    },
    "/api/v1/openapi.json": {
        "get": _op(
            "openapi",
            "This document",
            "meta",
            {
                "description": "OpenAPI 3.1 document.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            uses_stores=False,
        )
    },
    "/healthz": {
        "get": _op(
            "healthz",
            "Liveness: the process serves requests",
            "meta",
            _json(
                {"type": "object", "properties": {"status": {"const": "ok"}}},
                "Always, while the process is up.",
            ),
            uses_stores=False,
        )
    },
    "/readyz": {
        "get": _op(
            "readyz",
            "Readiness: MongoDB, Redis, the MQTT broker and the bus all answer",
            "meta",
            _json(_ref("Readiness"), "Every dependency answered within 1 s."),
        )
    },
    "/metrics": {
        "get": _op(
            "metrics",
            "Prometheus metrics",
            "meta",
            {"description": "Prometheus text exposition format.", "content": _TEXT},
            uses_stores=False,
        )
    },
}
PATHS["/api/v1/deliveries"]["post"]["responses"]["200"] = _json(
    _ref("Delivery"), "`order_id` was used before by this customer: the existing delivery."
)
PATHS["/api/v1/stream/alerts"]["get"]["responses"]["503"] = {
    **_error_response(
        f"Redis is unreachable, or {MAX_STREAM_CLIENTS} streams are open already (each holds "
        "a server thread); retry after `Retry-After`."
    ),
    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
}
# /readyz answers 503 with the check results rather than the error shape.
PATHS["/readyz"]["get"]["responses"]["503"] = _json(
    _ref("Readiness"), "At least one dependency did not answer; `checks` says which."
)

# --- customers, invoices, revenue -------------------------------------------------------------

_MONEY = {"type": "string", "pattern": r"^-?\d+\.\d{2}$", "description": "Decimal amount."}
_X_CACHE = {
    "X-Cache": {
        "description": "`hit`: served from the Redis read cache; `miss`: read from MongoDB.",
        "schema": {"type": "string", "enum": ["hit", "miss"]},
    }
}


def _cached(ok: Schema) -> Schema:
    return {**ok, "headers": _X_CACHE}


SCHEMAS.update(
    {
        **_from_model(CustomerCreate, "A new customer; `email` is unique (any case)."),
        **_from_model(CustomerPatch, "The fields to change; absent or null keep their value."),
        **_from_model(PaymentRequest, "A payment of the whole invoice; every field optional."),
        "Customer": {
            "type": "object",
            "required": ["id", "name", "email", "created_at"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "email": {"type": "string"},
                "phone": {"type": ["string", "null"]},
                "address": _nullable(_ref("Address")),
                "created_at": {"type": "string", "format": "date-time"},
                "updated_at": {"type": ["string", "null"], "format": "date-time"},
            },
        },
        "InvoiceItem": {
            "type": "object",
            "required": ["delivery_id", "description", "quantity", "unit_price", "total"],
            "properties": {
                "delivery_id": {"type": "string", "description": "The delivery billed."},
                "description": {"type": "string"},
                "quantity": {"type": "integer", "minimum": 1},
                "unit_price": _MONEY,
                "total": _MONEY,
                "station": {"type": "string", "description": "Pickup station."},
                "month": {"type": "string", "description": "Month delivered, YYYY-MM."},
            },
        },
        "Invoice": {
            "type": "object",
            "required": ["id", "customer_id", "period", "items", "total_amount", "status"],
            "properties": {
                "id": {"type": "string", "description": "`inv-{period}-{customer_id}`."},
                "customer_id": {"type": "string"},
                "period": {"type": "string", "description": "The month billed, YYYY-MM."},
                "invoice_date": {"type": "string", "format": "date-time"},
                "due_date": {"type": "string", "format": "date-time"},
                "currency": {"type": "string"},
                "items": {"type": "array", "items": _ref("InvoiceItem")},
                "subtotal": _MONEY,
                "tax": _MONEY,
                "total_amount": _MONEY,
                "status": {"type": "string", "enum": list(INVOICE_STATUSES)},
                "paid_at": {"type": ["string", "null"], "format": "date-time"},
                "payment": {"type": ["object", "null"], "additionalProperties": True},
            },
        },
        "CustomerRevenue": {
            "type": "object",
            "required": ["customer_id", "currency", "revenue", "invoices"],
            "properties": {
                "customer_id": {"type": "string"},
                "currency": {"type": "string"},
                "revenue": {**_MONEY, "description": "Billed for deliveries, before tax."},
                "tax": _MONEY,
                "billed": {**_MONEY, "description": "Invoice totals, tax included."},
                "paid": _MONEY,
                "outstanding": _MONEY,
                "invoices": {"type": "integer", "minimum": 0},
            },
        },
        "RevenueGroups": {
            "type": "object",
            "required": ["group_by", "currency", "items", "count"],
            "properties": {
                "group_by": {"type": "string", "enum": list(REVENUE_GROUPS)},
                "currency": {"type": "string"},
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "description": "`month` (YYYY-MM) or `station` (code), as grouped.",
                        "properties": {
                            "month": {"type": "string"},
                            "station": {"type": "string"},
                            "revenue": _MONEY,
                            "invoices": {"type": "integer"},
                            "items": {"type": "integer"},
                        },
                    },
                },
                "count": {"type": "integer"},
            },
        },
        "TopCustomers": {
            "type": "object",
            "required": ["currency", "items", "count"],
            "properties": {
                "currency": {"type": "string"},
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "customer_id": {"type": "string"},
                            "name": {"type": ["string", "null"]},
                            "revenue": _MONEY,
                            "invoices": {"type": "integer"},
                        },
                    },
                },
                "count": {"type": "integer"},
            },
        },
    }
)
SCHEMAS["Delivery"]["properties"]["price_final"] = {
    "type": ["string", "null"],
    "description": "The price billed (before tax), fixed on delivery.",
}
SCHEMAS["Delivery"]["properties"]["invoice_id"] = {
    "type": ["string", "null"],
    "description": "The invoice that bills it, once billed.",
}
PARAMETERS.update(
    {
        "CustomerId": {
            "name": "customer_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
        },
        "InvoiceId": {
            "name": "invoice_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
        },
        "EmailQuery": {
            "name": "email",
            "in": "query",
            "description": "Only the customer with this address (any case).",
            "schema": {"type": "string"},
        },
        "InvoiceCustomer": {
            "name": "customer_id",
            "in": "query",
            "description": "Only this customer's invoices.",
            "schema": {"type": "string", "pattern": ID_PATTERN},
        },
        "InvoiceStatus": {
            "name": "status",
            "in": "query",
            "description": "Only invoices in this status (default: all).",
            "schema": {"type": "string", "enum": list(INVOICE_STATUSES)},
        },
        "GroupBy": {
            "name": "group_by",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "enum": list(REVENUE_GROUPS)},
        },
        "TopLimit": {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
        },
    }
)
PATHS.update(
    {
        "/api/v1/customers": {
            "post": _op(
                "createCustomer",
                "Create a customer",
                "customers",
                _json(_ref("Customer"), "Created; `Location` is its URL."),
                "BadRequest",
                "Conflict",
                "UnsupportedMediaType",
                "Unprocessable",
                status="201",
                description="409 when another customer has the address (any case).",
                requestBody=_body("CustomerCreate", "The customer."),
            ),
            "get": _op(
                "listCustomers",
                "Customers, by id",
                "customers",
                _cached(_json(_list_of("Customer"), "Matching customers.")),
                "BadRequest",
                params=[_param("EmailQuery"), _param("Limit")],
            ),
        },
        "/api/v1/customers/{customer_id}": {
            "get": _op(
                "getCustomer",
                "One customer",
                "customers",
                _cached(_json(_ref("Customer"), "The customer.")),
                "NotFound",
                params=[_param("CustomerId")],
            ),
            "patch": _op(
                "patchCustomer",
                "Change a customer",
                "customers",
                _json(_ref("Customer"), "The customer as changed."),
                "BadRequest",
                "NotFound",
                "Conflict",
                "UnsupportedMediaType",
                "Unprocessable",
                params=[_param("CustomerId")],
                requestBody=_body("CustomerPatch", "The fields to change."),
            ),
            "delete": _op(
                "deleteCustomer",
                "Delete a customer",
                "customers",
                {"description": "Deleted."},
                "NotFound",
                "Conflict",
                status="204",
                params=[_param("CustomerId")],
                description="409 while the customer has pending or overdue invoices.",
            ),
        },
        "/api/v1/customers/{customer_id}/revenue": {
            "get": _op(
                "customerRevenue",
                "What a customer has been billed and paid",
                "customers",
                _json(_ref("CustomerRevenue"), "Totals over the customer's invoices."),
                "NotFound",
                params=[_param("CustomerId")],
            )
        },
        "/api/v1/invoices": {
            "get": _op(
                "listInvoices",
                "Invoices, newest first",
                "invoices",
                _cached(_json(_list_of("Invoice"), "Matching invoices.")),
                "BadRequest",
                params=[_param("InvoiceCustomer"), _param("InvoiceStatus"), _param("Limit")],
            )
        },
        "/api/v1/invoices/{invoice_id}": {
            "get": _op(
                "getInvoice",
                "One invoice, with its lines",
                "invoices",
                _cached(_json(_ref("Invoice"), "The invoice.")),
                "NotFound",
                params=[_param("InvoiceId")],
            )
        },
        "/api/v1/invoices/{invoice_id}/pay": {
            "post": _op(
                "payInvoice",
                "Record the payment of an invoice",
                "invoices",
                _json(_ref("Invoice"), "Paid."),
                "BadRequest",
                "NotFound",
                "Conflict",
                "UnsupportedMediaType",
                "Unprocessable",
                params=[_param("InvoiceId")],
                description="409 when it is paid already; 422 when `amount` is not the total.",
                requestBody={**_body("PaymentRequest", "Optional."), "required": False},
            )
        },
        "/api/v1/analytics/revenue": {
            "get": _op(
                "revenueBy",
                "Revenue by month delivered or by pickup station",
                "analytics",
                _json(_ref("RevenueGroups"), "Revenue before tax, per group, in key order."),
                "BadRequest",
                params=[_param("GroupBy")],
            )
        },
        "/api/v1/analytics/top-customers": {
            "get": _op(
                "topCustomers",
                "The customers with the most revenue",
                "analytics",
                _json(_ref("TopCustomers"), "Most revenue (before tax) first."),
                "BadRequest",
                params=[_param("TopLimit")],
            )
        },
    }
)
for _path in ("/api/v1/deliveries", "/api/v1/deliveries/{delivery_id}", "/api/v1/stations"):
    _ok = PATHS[_path]["get"]["responses"]["200"]
    PATHS[_path]["get"]["responses"]["200"] = _cached(_ok)


# --- dashboard, drone commands, the live stream -----------------------------------------------

_HTML = {"text/html": {"schema": {"type": "string"}}}
_SSE_HEADERS = PATHS["/api/v1/stream/alerts"]["get"]["responses"]["200"]["headers"]

SCHEMAS.update(
    {
        **_from_model(DroneCommand, "An operator's order to one drone."),
        "QueuedCommand": {
            "type": "object",
            "required": ["drone_id", "command"],
            "properties": {
                "drone_id": {"type": "string"},
                "command": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "The command as the drone receives it on "
                    "`skyhive/drones/{id}/commands` (`type`, `return_station`, `reason`, "
                    "`issued_at`).",
                },
            },
        },
    }
)
PATHS.update(
    {
        "/api/v1/drones/{drone_id}/commands": {
            "post": _op(
                "commandDrone",
                "Order one drone (return to station)",
                "drones",
                _json(_ref("QueuedCommand"), "Queued; the dispatchers relay it over MQTT."),
                "BadRequest",
                "NotFound",
                "TooLarge",
                "UnsupportedMediaType",
                "Unprocessable",
                status="202",
                params=[_param("DroneId")],
                requestBody=_body("DroneCommand", "The action, and optionally where and why."),
                description="404 for a drone with no live state; 422 for an unknown action or "
                "station. Without `station` the drone lands at the station nearest to its "
                "last reported position. Repeating a command is harmless.",
            )
        },
        "/api/v1/stream/live": {
            "get": _op(
                "streamLive",
                "Drone batches and alert changes as they happen (Server-Sent Events)",
                "dashboard",
                {
                    "description": f"An endless `text/event-stream`: `retry: {RETRY_MS}` first; "
                    "then an `event: drones` frame per batch the processor applied, its `data` "
                    "an array of DroneState, and an `event: alert` frame per alert change (as "
                    "on `/api/v1/stream/alerts`); a `: keepalive` comment after "
                    f"{KEEPALIVE_S:g} s without events. It shares the stream slots with "
                    "`/api/v1/stream/alerts`: one connection per dashboard.",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    "headers": _SSE_HEADERS,
                },
            )
        },
        "/": {
            "get": _op(
                "dashboard",
                "The operations dashboard (HTML)",
                "dashboard",
                {
                    "description": "The page; it reads the API and follows `/api/v1/stream/live`.",
                    "content": _HTML,
                },
                uses_stores=False,
            )
        },
        "/dashboard/static/{filename}": {
            "get": _op(
                "dashboardAsset",
                "The dashboard's scripts, styles and vendored map and chart libraries",
                "dashboard",
                {"description": "The file.", "content": {"*/*": {"schema": {"type": "string"}}}},
                "NotFound",
                uses_stores=False,
                parameters=[
                    {
                        "name": "filename",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
            )
        },
    }
)
PATHS["/api/v1/stream/live"]["get"]["responses"]["503"] = PATHS["/api/v1/stream/alerts"]["get"][
    "responses"
]["503"]

# --- the dashboard's reads: the overview, and downsampled history for its charts ------------

_COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
SCHEMAS.update(
    {
        "Overview": {
            "type": "object",
            "description": "The operations overview. Today is the UTC day.",
            "required": [
                "as_of",
                "drones",
                "deliveries_today",
                "open_alerts",
                "revenue_this_month",
            ],
            "properties": {
                "as_of": {"type": "string", "format": "date-time"},
                "drones": {
                    "type": "object",
                    "description": "Live drones (Redis) by status, every status listed; a "
                    "drone flagging an emergency counts as `emergency`, one without a status "
                    "as `unknown`.",
                    "properties": {"total": {"type": "integer"}, "by_status": _COUNTS},
                },
                "deliveries_today": {
                    "type": "object",
                    "description": "Deliveries created today, by their current status.",
                    "properties": {
                        "day": {"type": "string", "format": "date"},
                        "total": {"type": "integer"},
                        "by_status": _COUNTS,
                        "avg_delivery_s": {
                            **_NUM,
                            "description": "Mean seconds from order to drop of those of "
                            "today's deliveries that are delivered; null when none is.",
                        },
                    },
                },
                "open_alerts": {
                    "type": "object",
                    "description": "Alerts in state `open` (not acknowledged), by severity.",
                    "properties": {"total": {"type": "integer"}, "by_severity": _COUNTS},
                },
                "revenue_this_month": {
                    "type": "object",
                    "description": "Invoiced revenue (before tax) of the deliveries delivered "
                    "this month, as `/api/v1/analytics/revenue?group_by=month` gives it. "
                    "Invoices are issued once a month has ended, so for the running month "
                    "`unbilled` is what its deliveries so far will add.",
                    "properties": {
                        "month": {"type": "string", "pattern": r"^\d{4}-\d{2}$"},
                        "revenue": _MONEY,
                        "unbilled": {
                            **_MONEY,
                            "description": "Final prices (before tax) of this month's delivered "
                            "deliveries that no invoice bills yet.",
                        },
                        "unbilled_deliveries": {"type": "integer"},
                        "currency": {"type": "string"},
                    },
                },
            },
        },
        "TelemetryBucket": {
            "type": "object",
            "description": "Readings of one bucket, averaged.",
            "required": ["ts", "readings", *CHART_FIELDS],
            "properties": {
                "ts": {"type": "string", "format": "date-time", "description": "Bucket start."},
                "readings": {"type": "integer", "minimum": 1},
                **{name: {**_NUM, "description": "Mean over the bucket."} for name in CHART_FIELDS},
            },
        },
    }
)
PARAMETERS["BucketS"] = {
    "name": "bucket_s",
    "in": "query",
    "description": "Average the readings per bucket of this many seconds (aligned to the "
    "epoch) and return one `TelemetryBucket` per bucket with readings, newest first, at most "
    "`limit`. `since` then defaults to `limit` buckets before `until` (or now); the window "
    "may be at most 24 h (400 otherwise).",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_BUCKET_S},
}
_TELEMETRY = PATHS["/api/v1/drones/{drone_id}/telemetry"]["get"]
_TELEMETRY["parameters"].append(_param("BucketS"))
_TELEMETRY["responses"]["200"] = _json(
    {
        "oneOf": [
            _list_of("TelemetryRecord", drone_id={"type": "string"}),
            _list_of("TelemetryBucket", drone_id={"type": "string"}, bucket_s={"type": "integer"}),
        ]
    },
    "Readings in the window, or with `bucket_s` their bucket averages (empty, not 404, for "
    "a drone without history).",
)
PATHS["/api/v1/overview"] = {
    "get": _op(
        "overview",
        "The operations overview: fleet, today's deliveries, open alerts, revenue",
        "dashboard",
        _json(_ref("Overview"), "Figures computed by the stores at `as_of`."),
    )
}


DOCUMENT: Schema = {
    "openapi": "3.1.0",
    "info": {
        "title": "SkyHive API",
        "version": __version__,
        "description": "Live state, history, alerts, ingest, the fleet registry and "
        "delivery orders for a drone delivery fleet. "
        'Every error is JSON: `{"error": {"code", "message", "field"?}}`.',
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    },
    "tags": [
        {"name": name}
        for name in (
            "drones",
            "fleet",
            "deliveries",
            "customers",
            "invoices",
            "analytics",
            "telemetry",
            "alerts",
            "geofences",
            "stations",
            "deadletters",
            "dashboard",
            "meta",
        )
    ],
    "paths": PATHS,
    "components": {"schemas": SCHEMAS, "responses": RESPONSES, "parameters": PARAMETERS},
}


@bp.get("/api/v1/openapi.json")
def openapi() -> Response:
    return json_response(DOCUMENT)
