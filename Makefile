# Two entry points a fresh clone needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast lint bench clean translations

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

# The IdP's page texts: extract the English, merge it into the German and French catalogs (translate what
# is new or marked fuzzy there), compile the .mo files that are committed beside them.
translations: $(BIN)/.installed
	$(BIN)/pybabel extract --no-location --width 110 --sort-output -F babel.cfg -k N_ -o idp/translations/messages.pot .
	$(BIN)/pybabel update --width 110 --ignore-pot-creation-date --ignore-obsolete --no-fuzzy-matching -i idp/translations/messages.pot -d idp/translations
	$(BIN)/pybabel compile --statistics -d idp/translations

bench: $(BIN)/.installed
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .nextauth
