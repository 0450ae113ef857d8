# The two commands of the README. Each creates (once) and uses the local venv in .venv.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python

.PHONY: run test lint docs clean

# Two stamps: running needs socketkit and its CLI only; the tests add the dev toolchain.
$(VENV)/.run-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[cli]'
	touch $@

$(VENV)/.installed: $(VENV)/.run-installed
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[msgpack,metrics,cli,plot]' --group dev
	touch $@

# socketkit's main job: HTTP "Hello, world!" on 127.0.0.1:8888 (try: curl http://127.0.0.1:8888/).
run: $(VENV)/.run-installed
	$(VENV)/bin/socketkit serve hello

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests examples bench docs
	$(VENV)/bin/ruff format --check src tests examples bench docs
	$(VENV)/bin/mypy --strict src

# Two workers (pytest-xdist): most of a test's time is spent waiting on sockets and
# subprocesses, so two processes halve the wall time on a 2-core machine.
test: lint
	$(VENV)/bin/pytest -n 2

# The documentation site (mkdocs.yml), into site/; the tests build it the same way.
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache
