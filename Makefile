# One-command entry points. Everything runs from a local virtual environment in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install install-test run test bench lint dist clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python  ## the package and its console script, gatewayctl
	$(BIN)/python -m pip install --quiet -e .

install-test: $(BIN)/python  ## the package plus the test dependencies (SDKs, pytest, hypothesis, ruff, pdftoppm, PostgreSQL, Redis)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@# pdftoppm (Debian's poppler-utils) renders invoice PDFs to PNG in a test; installed as root with apt-get
	@# when missing, left alone when present; elsewhere the test says what to install.
	@command -v pdftoppm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing poppler-utils (pdftoppm) for the invoice rendering test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends poppler-utils >/dev/null; \
	  else \
	    echo "note: pdftoppm is missing (apt-get install poppler-utils as root); make test will fail without it"; \
	  fi; }
	@# redis-server and PostgreSQL (Debian's redis-server and postgresql): the shared-state and store tests start
	@# their own in a temp dir; installed as root with apt-get when missing, else the tests say what to install.
	@missing=""; command -v redis-server >/dev/null 2>&1 || missing=" redis-server"; \
	  { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || missing="$$missing postgresql"; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      echo "installing$$missing for the shared-state tests"; \
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	    else \
	      echo "note:$$missing missing (apt-get install$$missing as root); make test will fail without them"; \
	    fi; \
	  fi

run: install  ## init on first run (config.toml + data/ here), then serve in the foreground
	@if [ ! -f config.toml ]; then $(BIN)/gatewayctl init --dir .; fi
	$(BIN)/gatewayctl serve --config config.toml

test: install-test  ## the whole suite (unit, end-to-end, CLI, crash); the PDF-to-PNG test may not skip here
	GATEWAY_TEST_REQUIRE_PDFTOPPM=1 $(BIN)/python -m pytest

bench: install-test  ## overhead figures: direct vs through the gateway
	$(BIN)/python bench/run

dist: install-test  ## dist/gatewayctl.pyz: the package and its dependencies in one file (shiv), for this platform
	$(BIN)/python packaging/build_pyz.py --out dist/gatewayctl.pyz

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache dist
