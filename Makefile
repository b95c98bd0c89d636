# The two commands a newcomer needs: `make test` (and, from the first sync issue on, `make demo`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JS_DIR := tests/js
JS_STAMP := $(JS_DIR)/node_modules/.installed

.PHONY: setup test lint emulators clean

setup: $(STAMP) $(JS_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e . --group dev
	touch $(STAMP)

# Microsoft's EWS Managed API port, used by one test to prove the EWS emulator is not exchangelib-shaped only.
$(JS_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy emulators
	$(BIN)/mypy --strict shared/calsync

# Starts the EWS emulator in the foreground on its default port (Ctrl-C stops it).
emulators: setup
	$(BIN)/python -m emulators.ews

clean:
	rm -rf $(VENV) $(JS_DIR)/node_modules .pytest_cache
