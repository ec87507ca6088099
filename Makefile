# Two entry points a fresh clone needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast lint bench clean

# Running needs only the package; tests, linters and benchmarks add the dev extra.
$(BIN)/.run-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(BIN)/.installed: $(BIN)/.run-installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/.run-installed
	$(BIN)/nextauth all

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

# Two workers, each taking whole modules (their running systems are module fixtures); TEST_WORKERS=0 runs
# everything in this process.
TEST_WORKERS ?= 2

test: lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The fast set while working: no test that starts real services (about a minute on 2 busy cores).
test-fast: lint
	$(BIN)/pytest -m "not e2e" -q $(PYTEST_ARGS)

bench: $(BIN)/.installed
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .nextauth
