# Two commands for a fresh machine with Python 3.11+:
#   make dev    install, then run the gateway on its embedded default (SQLite + simulator)
#   make test   install, then lint, type-check and run the whole test suite

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: install dev test lint typecheck pytest clean lock

$(BIN)/momo-gateway: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/momo-gateway

dev: install
	$(BIN)/momo-gateway dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy --strict app

pytest: install
	$(BIN)/pytest

test: lint typecheck pytest

# requirements.lock: the runtime dependencies (no dev extras) pinned with their hashes, resolved
# for every platform (the image is built for amd64 and arm64). Run after changing pyproject.toml's
# dependencies; tests/test_lockfile.py fails until the two agree. Pins already in the lock are
# kept where they still fit: `make lock LOCK_ARGS=--upgrade` moves every pin to the newest release.
lock: install
	$(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --universal --python-version 3.11 --output-file requirements.lock $(LOCK_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache momo_gateway.db* dist build *.egg-info
