VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test up lint fmt typecheck clean screenshots

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

typecheck: $(STAMP)
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The suite in two phases (tests/support/phases.py): every test that may share the machine on PYTEST_WORKERS
# pytest-xdist workers, then the slow ones (faults, soak, bench, browser, bare machine) one at a time.
# A subset: `make test PYTEST_ARGS="tests/test_api_holds.py -k expired"` (the same arguments go to both phases).
PYTEST_WORKERS ?= 4
test: lint typecheck
	PYTEST_WORKERS=$(PYTEST_WORKERS) $(PY) -m tests.support.phases $(PYTEST_ARGS)

# The whole stack on embedded defaults (private Redis, SQLite in ./var); `make up UP_ARGS="--port 9000"`.
up: $(STAMP)
	$(VENV)/bin/flashsale up $(UP_ARGS)

# Refresh docs/img/*.png: the browser tests, saving what they see (needs Redis, PostgreSQL and chromium).
screenshots: $(STAMP)
	FLASHSALE_SCREENSHOTS=1 $(VENV)/bin/pytest -q tests/test_browser_storefront.py tests/test_browser_dashboard.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
