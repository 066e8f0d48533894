# One-command entry points. Everything runs from a local virtual environment in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install install-test run test bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python  ## the package and its console script, gatewayctl
	$(BIN)/python -m pip install --quiet -e .

install-test: $(BIN)/python  ## the package plus the test dependencies (SDKs, pytest, hypothesis, ruff)
	$(BIN)/python -m pip install --quiet -e '.[test]'

run: install  ## init on first run (config.toml + data/ here), then serve in the foreground
	@if [ ! -f config.toml ]; then $(BIN)/gatewayctl init --dir .; fi
	$(BIN)/gatewayctl serve --config config.toml

test: install-test  ## the whole suite (unit, end-to-end, CLI, crash)
	$(BIN)/python -m pytest

bench: install-test  ## overhead figures: direct vs through the gateway
	$(BIN)/python bench/run

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
