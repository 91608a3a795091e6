# Two commands matter: `make run` (the platform) and `make test` (the whole suite).
# Every install comes from uv.lock (exact versions and hashes); `make lock` refreshes it on purpose.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# uv itself, pinned; it lives in its own small venv so that syncing .venv never removes it.
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
# Never download a Python: use the one on the machine. Install exactly what the lock says.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test install lock lint typecheck bench up down clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --extra dev --python $(PYTHON) --quiet
	touch $(STAMP)

install: $(STAMP)

# Re-resolve every dependency to the newest release the ranges in pyproject.toml allow.
lock: $(UV)
	$(UV) lock --upgrade --python $(PYTHON)

run: $(STAMP)
	$(PY) -m deploy.run_local

# Two stages: the whole suite, then the RabbitMQ restart alone (the machine's broker is shared by
# every test, so nothing else may run while it is down; it is left running).
test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider
	$(PY) -m pytest -q -p no:cacheprovider tests/broker_restart

lint: $(STAMP)
	$(VENV)/bin/ruff check shared services tests bench deploy docs
	$(VENV)/bin/mypy --strict shared services

bench: $(STAMP)
	$(PY) -m bench.gateway_versions
	$(PY) -m bench.push_latency
	$(PY) -m bench.crawl
	$(PY) -m bench.receiver_patch
	$(PY) -m bench.db_ops
	$(PY) -m bench.large_site
	$(PY) -m bench.list_cpu
	$(PY) -m bench.tokens_authorize
	$(PY) -m bench.pricing
	$(PY) -m bench.cdr_delivery

up:
	docker compose up --build

down:
	docker compose down

clean:
	rm -rf $(VENV) $(TOOLS) .data .pytest_cache .mypy_cache .ruff_cache
