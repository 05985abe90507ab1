# Everyday actions. `make demo` and `make test` work on a fresh machine (Python 3.11+).
VENV ?= .venv
PY := $(VENV)/bin/python
# The third-party index servers of the interop tests, in a venv of their own (tests/peers-requirements.txt).
PEERS ?= .venv-peers

.PHONY: demo test test-fast lint lint-mypy bench live-check clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

$(PEERS)/.installed: tests/peers-requirements.txt
	python3 -m venv $(PEERS)
	$(PEERS)/bin/pip install -q --upgrade pip
	$(PEERS)/bin/pip install -q -r tests/peers-requirements.txt
	touch $@

demo: $(VENV)/.installed  ## sync a local fixture index end to end on embedded defaults
	$(PY) scripts/demo.py

test: $(VENV)/.installed $(PEERS)/.installed  ## the whole suite (needs PostgreSQL on 127.0.0.1:5432; see .ci/run)
	$(VENV)/bin/pytest -n 3 --dist worksteal

test-fast: $(VENV)/.installed $(PEERS)/.installed
	$(VENV)/bin/pytest -n 3 --dist worksteal -m "not slow"

# The packages mypy checks (strict on all of them: pyproject.toml); .pre-commit-config.yaml runs the same.
PACKAGES := -p mirrorflow.deployments -p mirrorflow.flows -p mirrorflow.server -p mirrorflow.tasks -p mirrorflow.storage -p mirrorflow.fixtureindex

lint: $(VENV)/.installed  ## ruff everywhere; mypy strict on every package; the import contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(PACKAGES)
	$(VENV)/bin/lint-imports

lint-mypy:  ## mypy alone (the pre-commit hook)
	$(VENV)/bin/mypy $(PACKAGES)

bench: $(VENV)/.installed  ## the scale benchmark (about 5 minutes here; see benchmarks/README.md)
	$(PY) -m benchmarks.run --projects 20000

live-check: $(VENV)/.installed  ## the seed's commands and complex remotes against a real index (not CI)
	@test -n "$(INDEX)" || { echo "usage: make live-check INDEX=<index root URL>" >&2; exit 2; }
	$(PY) scripts/live_check.py "$(INDEX)" $(ONLY)

clean:
	-[ -d .mirrorflow-demo ] && MIRRORFLOW_HOME=$(CURDIR)/.mirrorflow-demo $(VENV)/bin/mirrorflow server stop >/dev/null
	rm -rf .mirrorflow-demo .pytest_cache
