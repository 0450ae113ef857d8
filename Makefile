# The two commands of the README. Each creates (once) and uses the local venv in .venv.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python

NATIVE := build/native

.PHONY: run test lint native clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,msgpack,cli,plot]'
	touch $@

# socketkit's main job: HTTP "Hello, world!" on 127.0.0.1:8888 (try: curl http://127.0.0.1:8888/).
run: $(VENV)/.installed
	$(VENV)/bin/socketkit serve hello

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests examples bench tools
	$(VENV)/bin/ruff format --check src tests examples bench tools
	$(VENV)/bin/mypy --strict src

# The native wheel (hot path compiled with mypyc), installed beside the source (see tools/build_native.py).
native: $(VENV)/.installed
	$(PY) tools/build_native.py --out $(NATIVE)

# The suite runs on the pure-Python source, then on the native build.
test: lint native
	$(VENV)/bin/pytest
	SOCKETKIT_NATIVE=1 PYTHONPATH=$(NATIVE) $(VENV)/bin/pytest -p no:cacheprovider --deselect tests/test_bench_harness.py

clean:
	rm -rf $(VENV) $(NATIVE) build/wheels .pytest_cache .mypy_cache .ruff_cache
