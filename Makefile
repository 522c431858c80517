# Two commands for a fresh machine with Python 3.11+:
#   make dev    install, then run the gateway on its embedded default (SQLite + simulator)
#   make test   install, then lint, type-check and run the whole test suite

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: install dev test lint typecheck pytest clean

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

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache momo_gateway.db* dist build *.egg-info
