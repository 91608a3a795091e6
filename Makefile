# Two commands matter: `make run` (the platform) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install lint typecheck bench up down clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m deploy.run_local

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check shared services tests bench deploy
	$(VENV)/bin/mypy --strict shared services

bench: $(STAMP)
	$(PY) -m bench.gateway_versions
	$(PY) -m bench.push_latency
	$(PY) -m bench.crawl
	$(PY) -m bench.receiver_patch

up:
	docker compose up --build

down:
	docker compose down

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
