# The two commands of the README, plus helpers. Needs only Python 3.11+ on the machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-clock bench manage backup restore-drill lint

# Reinstall only when a requirements file changed since the last install.
$(STAMP): requirements/base.txt requirements/dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	touch $(STAMP)

## run: set up and run web, Celery worker and beat (embedded PostgreSQL/Redis if no URLs set)
run: $(STAMP)
	$(BIN)/python scripts/devstack.py run

## test: set up and run every test (pass more pytest arguments with ARGS="...")
test: $(STAMP)
	chromium="$$(scripts/ensure_browser.sh)" && CHROMIUM_PATH="$$chromium" $(BIN)/python scripts/devstack.py test $(ARGS)

## test-clock: the whole suite with the wall clock moved (CLOCK=+400d, or an ISO moment such as 2027-03-14T07:30:00Z)
CLOCK ?= +400d
test-clock: $(STAMP)
	chromium="$$(scripts/ensure_browser.sh)" && CHROMIUM_PATH="$$chromium" $(BIN)/python scripts/devstack.py test --clock=$(CLOCK) $(ARGS)

## bench: benchmarks that need the database (numbers in docs/benchmarks.md); plain scripts run directly
bench: $(STAMP)
	$(BIN)/python scripts/devstack.py bench $(ARGS)

## manage: any manage.py command on the same database as `make run` (ARGS="createsuperuser")
manage: $(STAMP)
	$(BIN)/python scripts/devstack.py manage $(ARGS)

## backup: pg_dump the local database into ./backups (production: scripts/backup.sh)
backup: $(STAMP)
	$(BIN)/python scripts/devstack.py backup $(ARGS)

## restore-drill: dump the local database, restore it into a scratch one, compare row counts per table
restore-drill: $(STAMP)
	$(BIN)/python scripts/devstack.py restore-drill $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
