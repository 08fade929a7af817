# Houtai: `make run` for a first look, `make test` for the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app run
STAMP := $(VENV)/.installed

.PHONY: run test install init demo worker scheduler serve bench translations clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

translations: install
	$(BIN)/pybabel compile -f -d app/translations >/dev/null

init: install translations
	$(FLASK) houtai init

demo: init
	$(FLASK) houtai demo

run: demo
	@echo "Serving on http://127.0.0.1:5000 (Ctrl-C to stop)"
	$(BIN)/python run.py

test: install translations
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Production shape: REDIS_URL and DATABASE_URL set, one or more of each process.
serve: install translations
	$(BIN)/gunicorn --no-control-socket -w $${WEB_WORKERS:-4} -b $${BIND:-127.0.0.1:5000} run:app

worker: install
	@test -n "$$REDIS_URL" || (echo "REDIS_URL must be set for workers" && exit 2)
	$(BIN)/rq worker --url "$$REDIS_URL" --worker-class rq.worker.SimpleWorker --with-scheduler $${HOUTAI_QUEUE:-houtai}

scheduler: install
	while true; do $(FLASK) houtai tick; sleep $${TICK_SECONDS:-60}; done

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) instance .pytest_cache
