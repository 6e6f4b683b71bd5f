"""The environment of a `skyhive` command a test runs (click's CliRunner or a subprocess):
the test's own servers and database, as its settings name them."""

from __future__ import annotations

from skyhive.settings import Settings


def cli_env(s: Settings) -> dict[str, str]:
    return {
        "SKYHIVE_MONGODB_URI": s.mongodb_uri,
        "SKYHIVE_MONGODB_DB": s.mongodb_db,
        "SKYHIVE_REDIS_URL": s.redis_url,
        "SKYHIVE_REDIS_CLUSTER": str(s.redis_cluster).lower(),
        "SKYHIVE_MQTT_URL": s.mqtt_url,
        "SKYHIVE_DATA_DIR": str(s.data_dir),
        "SKYHIVE_HISTORY__EXPIRE": str(s.history.expire).lower(),
    }
