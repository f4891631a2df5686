# bayes-ab: every target sets up its own virtual environment first, with the tested releases (constraints.txt).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CANARY ?= /tmp/bayes-ab-canary
WORKERS ?= 2

.PHONY: demo test test-fast bench docs canary mutants browser java postgres clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

## demo: simulate the push-notification experiment and analyse it end to end
demo: $(STAMP)
	$(BIN)/python examples/push_notification/generate.py --out examples/push_notification/data/users.parquet
	$(BIN)/bayes-ab simulate examples/push_notification/spec.yaml
	$(BIN)/bayes-ab analyze examples/push_notification/spec.yaml \
		--data examples/push_notification/data/users.parquet --report --stage 25 --days 4
	$(BIN)/bayes-ab portfolio

## browser: headless Chromium for the report's browser test (Debian package; needs root or sudo)
browser:
	./scripts/install-browser.sh

## java: a Java 17+ runtime for the Spark engine and its tests (Debian package; needs root or sudo)
java:
	./scripts/install-java.sh

## postgres: PostgreSQL binaries for the SQL engine's tests (Debian package; the tests start their own server)
postgres:
	./scripts/install-postgres.sh

## test: the whole suite, statistical checks marked `slow` included, on $(WORKERS) worker processes
test: $(STAMP) browser java postgres
	$(BIN)/python -m pytest -q -n $(WORKERS)

## test-fast: the suite without the slow statistical checks
test-fast: $(STAMP) java postgres
	$(BIN)/python -m pytest -q -n $(WORKERS) -m "not slow"

## docs: the documentation site (docs/ -> site/), warnings as errors
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --quiet --site-dir site

## canary: the newest releases of the sampler stack in a throwaway venv, and the smoke tests on them
canary:
	rm -rf $(CANARY)
	$(PYTHON) -m venv $(CANARY)
	$(CANARY)/bin/pip install --quiet --upgrade pip
	$(CANARY)/bin/pip install --quiet '.[dev]'
	$(CANARY)/bin/pip install --quiet --upgrade nutpie pymc pytensor numba llvmlite
	$(CANARY)/bin/python scripts/canary.py

## mutants: plant one bug at a time in the core numeric modules and see the tests fail (scripts/mutants.py)
mutants: $(STAMP)
	$(BIN)/python scripts/mutants.py --budget-minutes $(or $(BUDGET),40) --workers $(WORKERS)

## bench: the performance figures recorded in benchmarks/RESULTS.md
bench: $(STAMP) java postgres
	$(BIN)/python benchmarks/refit_speed.py
	$(BIN)/python benchmarks/aggregated_vs_per_user.py
	$(BIN)/python benchmarks/aggregation_scale.py
	$(BIN)/python benchmarks/warehouse.py

clean:
	rm -rf $(VENV) site models/*/ reports/*.html
