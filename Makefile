# The two commands a newcomer needs: `make test` (and, from the first sync issue on, `make demo`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JS_DIR := tests/js
JS_STAMP := $(JS_DIR)/node_modules/.installed

.PHONY: setup test lint emulators clean sam-check demo lock lock-upgrade openapi

setup: $(STAMP) $(JS_STAMP)

# Every Python package the project installs (runtime, dev group, SAM tools) is pinned, with hashes, in uv.lock.
# uv itself comes from PyPI at this version, into a small venv of its own (the one thing installed with pip).
UV_VERSION := 0.13.8
UV_VENV := .venv-uv
UV := $(UV_VENV)/bin/uv
UV_STAMP := $(UV_VENV)/.installed-$(UV_VERSION)
# uv must use the machine's interpreters ($(PYTHON), as `python -m venv` did), never download a Python of its own.
export UV_PYTHON_DOWNLOADS := never

$(UV_STAMP):
	rm -rf $(UV_VENV)
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"
	touch $(UV_STAMP)

# Exactly the locked runtime set and dev group (packages not in the lock are removed), calsync itself editable.
# --locked stops here if pyproject.toml was edited without `make lock`.
# A .venv made before the lock (by python -m venv, with pip and setuptools of its own) is made afresh by uv.
$(STAMP): uv.lock pyproject.toml $(UV_STAMP)
	grep -qs '^uv = ' $(VENV)/pyvenv.cfg || rm -rf $(VENV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --locked --group dev --python $(PYTHON)
	touch $(STAMP)

# After editing pyproject.toml: re-resolves what changed, keeps every other version. lock-upgrade moves everything
# to the newest versions the bounds allow (figures in bench/ then stop being comparable with older runs).
# Both regenerate shared/requirements.txt, the layer's list, from the lock. Not a bare `uv lock`: tools/lock.py
# says why (the SAM tools' pins would otherwise leak into the runtime set).
lock: $(UV_STAMP)
	UV_PYTHON=$(PYTHON) $(PYTHON) tools/lock.py $(UV) $(LOCK_ARGS)

lock-upgrade:
	$(MAKE) lock LOCK_ARGS=--upgrade

# Microsoft's EWS Managed API port, used by one test to prove the EWS emulator is not exchangelib-shaped only.
$(JS_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

test: setup sam-check lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# aws-sam-cli pins an older boto3 than ours, so it and cfn-lint live in their own virtualenv, from the lock's `sam`
# group (resolved apart from the dev group: see [tool.uv] conflicts in pyproject.toml).
SAM_VENV := .venv-sam
SAM_BIN := $(SAM_VENV)/bin
SAM_STAMP := $(SAM_VENV)/.installed
# No AWS account here or in CI: a region keeps the tools from asking for one, and nothing talks to AWS.
SAM_ENV := AWS_DEFAULT_REGION=eu-west-1 AWS_REGION=eu-west-1 SAM_CLI_TELEMETRY=0
# `sam build` without Docker builds with a python3.12 found on PATH (the Lambda runtime's version). pyenv's shims
# answer to python3.12 even when 3.12 is not selected, so each candidate is run, not just found.
PYTHON312 ?= $(shell for c in "$$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3.12 \
	"$$HOME"/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12 \
	"$$(command -v python3.12)"; do \
	  if [ -x "$$c" ] && "$$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then \
	    echo "$$c"; break; fi; done)

$(SAM_STAMP): uv.lock pyproject.toml $(UV_STAMP)
	UV_PROJECT_ENVIRONMENT=$(SAM_VENV) $(UV) sync --locked --only-group sam --no-install-project --python $(PYTHON)
	touch $(SAM_STAMP)

# template.yaml: cfn-lint, SAM's own validation with lint, and a real build of the layer and functions (arm64).
sam-check: $(SAM_STAMP)
	@test -n "$(PYTHON312)" || { echo "sam-check: sam build needs a Python 3.12 interpreter (the Lambda runtime)." \
	  "Install one (e.g. 'pyenv install 3.12') or run 'make PYTHON312=/path/to/python3.12'." >&2; exit 1; }
	$(SAM_ENV) $(SAM_BIN)/cfn-lint template.yaml
	$(SAM_ENV) $(SAM_BIN)/sam validate --lint --template-file template.yaml
	PATH="$(dir $(PYTHON312)):$(CURDIR)/$(SAM_BIN):$$PATH" $(SAM_ENV) \
	  $(SAM_BIN)/sam build --template-file template.yaml --build-dir .aws-sam/build --cached --parallel

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy emulators
	$(BIN)/mypy --strict shared/calsync
	$(BIN)/mypy --strict calsync_cli
	$(BIN)/lint-imports

# The product working, on loopback: the local stack (moto, both emulators, the real handlers) and a scripted
# JRNI scenario whose timeline shows each change arriving in Outlook.
# The admin API's OpenAPI document, committed as docs/openapi.json: run after changing a route.
openapi: setup
	$(BIN)/python tools/openapi.py

demo: setup
	PYTHONPATH=.:shared $(BIN)/python -m local.demo

# Starts the EWS emulator in the foreground on its default port (Ctrl-C stops it).
emulators: setup
	$(BIN)/python -m emulators.ews

clean:
	rm -rf $(VENV) $(SAM_VENV) $(UV_VENV) .aws-sam $(JS_DIR)/node_modules .pytest_cache
