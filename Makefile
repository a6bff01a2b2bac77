# Huiyuan: `make run` to try it, `make test` to test it. Nothing else needs installing first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint venv migrate seed worker applier scheduler clean reliability reliability-nodes bench bench-scale

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

migrate: venv
	$(FLASK) db upgrade

seed: migrate
	$(FLASK) demo seed --if-empty --simulate-days 90

run: seed
	@$(FLASK) admin create-token make-run
	@echo "HQ console:   http://$(HOST):$(PORT)/console/  demo logins, one per role:"
	@$(FLASK) demo console-logins 2>/dev/null
	@echo "API docs:     http://$(HOST):$(PORT)/docs  (OpenAPI: /openapi.json)"
	@echo "Health:       http://$(HOST):$(PORT)/healthz"
	@echo "Demo payment: $(FLASK) demo pay --wallet wechat --amount 35.00 --store SH001 --url http://$(HOST):$(PORT)"
	@echo "Scheduler:    periodic jobs in the background (log: instance/scheduler.log)"
	@$(FLASK) jobs scheduler > instance/scheduler.log 2>&1 & echo $$! > instance/scheduler.pid; \
	trap 'kill $$(cat instance/scheduler.pid) 2>/dev/null' EXIT INT TERM; \
	$(FLASK) run --host $(HOST) --port $(PORT)

# RQ worker plus the money engine's applier (flask engine apply), which applies journalled
# payment notifications as they arrive (ENGINE_APPLY=worker, the production default)
worker: venv
	@$(FLASK) engine apply & echo $$! > instance/applier.pid; \
	trap 'kill $$(cat instance/applier.pid) 2>/dev/null' EXIT INT TERM; \
	$(FLASK) jobs worker

applier: venv
	$(FLASK) engine apply

scheduler: venv
	$(FLASK) jobs scheduler

lint: venv
	$(BIN)/ruff check .

test: lint
	@[ -x /usr/bin/chromium ] || echo "make test: no browser at /usr/bin/chromium: the console's browser tests are skipped (apt-get install chromium)"
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Faults, duplicate deliveries and hostile input against throwaway PostgreSQL/Redis/gunicorn
# on loopback ports (about 6 minutes); exits 1 on any problem or audit difference.
reliability: venv
	$(BIN)/python -m bench.reliability $(RELIABILITY_ARGS)

# More than one machine, on loopback: a PostgreSQL primary and a streaming replica (ports
# 5440-5449, in a temp dir), two gunicorn nodes, two workers, two schedulers; a node and a
# worker killed mid-run, the year-end expiry shared by two runners; PASS when nothing doubled,
# nothing was lost and flask audit is clean (about 5 minutes). Redis: NODES_REDIS_URL
# (default redis://127.0.0.1:6379/11, emptied first).
reliability-nodes: venv
	$(BIN)/python -m bench.reliability.nodes $(NODES_ARGS)

# Figures of issue 9 (PostgreSQL on 127.0.0.1:5432 and Redis on :6379 must be running; see
# bench/README.md). The HTTP load is wrk: run as root on Debian/Ubuntu, a missing wrk is
# installed from the distribution (BENCH_NO_INSTALL=1 to skip); otherwise a Python load runs.
bench: venv
	@command -v wrk >/dev/null || [ -n "$(BENCH_NO_INSTALL)" ] || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || { \
	  echo "wrk not found: apt-get install wrk"; \
	  apt-get install -y -q wrk >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q wrk >/dev/null 2>&1; } || true; }
	@command -v wrk >/dev/null || echo "wrk not found: sudo apt-get install wrk (using the slower Python load generator meanwhile)"
	@command -v pgbench >/dev/null || { echo "pgbench not found: sudo apt-get install postgresql-contrib (or postgresql-client)"; exit 1; }
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

# Issue 19's figures at 10 M members and 100 M purchases (resumable load into huiyuan_scale; it
# says how much disk it needs and refuses when short). Smaller: BENCH_SCALE_ARGS="--members
# 100000 --purchases 1000000 --db huiyuan_scale_small". See bench/README.md.
bench-scale: venv
	@command -v pgbench >/dev/null || { echo "pgbench not found: sudo apt-get install postgresql-contrib (or postgresql-client)"; exit 1; }
	$(BIN)/python bench/scale_bench.py $(BENCH_SCALE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
