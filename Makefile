# Two commands for a fresh machine: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo up test test-fast lint format bench-ingest bench-alerts bench-dispatch clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "SkyHive needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/skyhive demo

up: install
	$(BIN)/skyhive up

test: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff format --check src tests
	$(BIN)/ruff check src tests
	$(BIN)/mypy src

format: install
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

# The figures in docs/benchmarks.md: the embedded stack, then Mosquitto as the broker.
bench-ingest: install
	$(BIN)/skyhive bench ingest --rate 1000 --duration 30 --drones 500
	$(BIN)/skyhive bench ingest --rate 1500 --duration 30 --drones 500
	$(BIN)/skyhive bench ingest --rate 1800 --duration 30 --drones 500
	$(BIN)/skyhive bench ingest --rate 1500 --duration 30 --drones 500 --broker mosquitto
	$(BIN)/skyhive bench ingest --rate 1800 --duration 30 --drones 500 --broker mosquitto

bench-alerts: install
	$(BIN)/skyhive bench alerts --rate 1000 --duration 20
	$(BIN)/skyhive bench alerts --rate 1500 --duration 20
	$(BIN)/skyhive bench alerts --rate 2000 --duration 20
	$(BIN)/skyhive bench alerts --rate 1500 --duration 20 --broker mosquitto
	$(BIN)/skyhive bench alerts --rate 2000 --duration 20 --broker mosquitto

bench-dispatch: install
	$(BIN)/skyhive bench dispatch --drones 1000 --rate 100 --duration 8
	$(BIN)/skyhive bench dispatch --drones 1000 --rate 100 --duration 8 --broker mosquitto
	$(BIN)/skyhive bench dispatch --drones 1000 --rate 100 --duration 8 --telemetry-hz 0.1
	$(BIN)/skyhive bench dispatch --drones 1000 --rate 100 --duration 8 --telemetry-hz 0.1 --broker mosquitto

clean:
	rm -rf $(VENV) .skyhive .pytest_cache .mypy_cache .ruff_cache
