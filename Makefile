# bayes-ab: every target sets up its own virtual environment first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast bench browser java postgres clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
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

## test: the whole suite, statistical checks marked `slow` included
test: $(STAMP) browser java postgres
	$(BIN)/python -m pytest -q

## test-fast: the suite without the slow statistical checks
test-fast: $(STAMP) java postgres
	$(BIN)/python -m pytest -q -m "not slow"

## bench: the performance figures recorded in benchmarks/RESULTS.md
bench: $(STAMP) java postgres
	$(BIN)/python benchmarks/refit_speed.py
	$(BIN)/python benchmarks/aggregated_vs_per_user.py
	$(BIN)/python benchmarks/aggregation_scale.py
	$(BIN)/python benchmarks/warehouse.py

clean:
	rm -rf $(VENV) models/*/ reports/*.html
