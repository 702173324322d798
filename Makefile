# FeedMood developer commands. `make run` and `make test` are all you need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: help venv run migrate worker broker-check beat test test-fast superuser lint typecheck format schema collectstatic clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'

venv: $(STAMP) ## create .venv and install requirements-dev.txt (re-runs only when requirements change)

$(STAMP): requirements.txt requirements-ml.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements-dev.txt
	@touch $@

migrate: venv ## apply database migrations
	$(BIN)/python manage.py migrate --noinput

run: migrate ## dev server on 127.0.0.1:8000 (SQLite + in-process Celery unless env says otherwise)
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

worker: broker-check venv ## Celery worker on all queues (needs CELERY_BROKER_URL or REDIS_URL)
	$(BIN)/celery -A config worker -Q fer,default,batch -c 2 --loglevel=info

# Without a broker the settings fall back to memory:// (tasks run inside the web process): a worker would idle.
BROKER := $(or $(CELERY_BROKER_URL),$(REDIS_URL))
broker-check:
	@case "$(BROKER)" in \
	  "" | memory://*) echo "make: no broker. Set CELERY_BROKER_URL (or REDIS_URL), e.g. redis://127.0.0.1:6379/0;" \
	    "without one, tasks run inside the web process and a worker would receive nothing." >&2; exit 2;; \
	esac
	@set -- $$(echo "$(BROKER)" | sed -E 's#^[a-z]+://([^@/]*@)?([^:/]+):?([0-9]*).*#\2 \3#'); \
	  timeout 5 bash -c 'exec 3<>/dev/tcp/$$0/$$1' "$$1" "$${2:-6379}" 2>/dev/null \
	  || { echo "make: the broker at $$1:$${2:-6379} does not answer; start Redis first." >&2; exit 2; }

beat: broker-check venv ## Celery beat with the database scheduler
	$(BIN)/celery -A config beat --loglevel=info --scheduler django_celery_beat.schedulers:DatabaseScheduler

test: venv ## run the test suite
	$(BIN)/pytest -p no:cacheprovider

test-fast: venv ## tests without subprocess/worker tests
	$(BIN)/pytest -p no:cacheprovider -m "not slow"

superuser: migrate ## create an admin user
	$(BIN)/python manage.py createsuperuser

lint: venv ## ruff (lint + format check), mypy (strict on the pure cores), Django checks, migrations, schema
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MAKE) --no-print-directory typecheck
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null

typecheck: venv ## mypy, strict on the pure cores (ranking, mood, text affect, pipeline, runtime, model card)
	$(BIN)/mypy recommender/ranking.py recommender/mood.py recommender/text_affect.py emotion/pipeline.py ml/runtime.py ml/card.py

format: venv ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schema: venv ## write the OpenAPI schema to schema.yml
	$(BIN)/python manage.py spectacular --validate --file schema.yml

collectstatic: venv ## collect static files into STATIC_ROOT
	$(BIN)/python manage.py collectstatic --noinput

clean: ## remove caches (keeps .venv and the database)
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +
	rm -rf .pytest_cache staticfiles
