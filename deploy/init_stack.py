"""One-shot initialisation of a SkyHive deployment whose servers SkyHive does not run: what
`skyhive up` does before it starts its roles (deploy/compose.yaml's ``init`` service runs this
in the SkyHive image as ``python /opt/skyhive/init_stack.py``).

1. The bootstrap: MongoDB's indexes (and the time-series ``telemetry`` collection where the
   server has them), the BART stations, the processor's consumer group on the bus. Idempotent.
2. The services' MQTT logins (``skyhive.gateway``, ``skyhive.dispatcher``): those in
   ``SKYHIVE_MQTT_SERVICES_FILE`` that still verify are kept; the others are issued, stored
   hashed in MongoDB and written to that file (mode 600), which the gateways and dispatchers
   read. Mosquitto's password and ACL files are rendered afterwards from the same store
   (`skyhive broker mosquitto-config`, the ``mosquitto-config`` service).

It waits for MongoDB (a replica set electing its primary) and the bus, retrying for up to
``--wait`` seconds, then exits 0; non-zero if they never answered. No API key is made here:
create the first admin key yourself (`skyhive keys create --role admin`, printed once).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence

from skyhive.bootstrap import bootstrap
from skyhive.services.device_credentials import ensure_service_credentials
from skyhive.settings import Settings, load_settings
from skyhive.wiring import Clients

log = logging.getLogger("skyhive.init")


def initialise(clients: Clients, settings: Settings) -> list[str]:
    """Bootstrap, then the services' MQTT logins; returns the service usernames."""
    bootstrap(clients)
    logins = ensure_service_credentials(clients, settings.mqtt_services_path())
    return sorted(login.username for login in logins.values())


def run(
    settings: Settings,
    wait_s: float,
    retry_s: float = 2.0,
    step: Callable[[Clients, Settings], list[str]] = initialise,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """``step`` until it succeeds (0) or ``wait_s`` has passed (1), each try on new clients."""
    deadline = clock() + wait_s
    attempt = 0
    while True:
        attempt += 1
        clients = Clients(settings)
        try:
            users = step(clients, settings)
        except Exception as exc:  # the servers are not up yet: try again until the deadline
            if clock() >= deadline:
                log.error("initialisation failed after %d attempts: %s", attempt, exc)
                return 1
            log.warning("initialisation attempt %d failed (%s); retrying", attempt, exc)
            sleep(retry_s)
            continue
        finally:
            clients.close()
        log.info(
            "initialised: indexes, stations and consumer group; MQTT logins for %s in %s",
            ", ".join(users),
            settings.mqtt_services_path(),
        )
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--wait", type=float, default=300.0, help="seconds to keep retrying (default 300)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("pymongo", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return run(load_settings(), args.wait)


if __name__ == "__main__":
    sys.exit(main())
