# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Each makes its own virtual environment (.venv) and installs what it needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
RT     := .venv-runtime

.PHONY: demo test test-runtime eval clean

demo: $(VENV)/.runtime
	$(VENV)/bin/edgesleep demo

# the whole suite, then again where only the runtime is installed (no torch, no llama.cpp): the
# runtime, memory, CLI and backend tests must pass there too, on the committed fixtures
test: $(VENV)/.dev $(RT)/.ok
	$(PY) -m pytest -q
	$(RT)/bin/python -m pytest -q -p no:cacheprovider

test-runtime: $(RT)/.ok
	$(RT)/bin/python -m pytest -q -p no:cacheprovider

eval: $(VENV)/.runtime
	$(VENV)/bin/edgesleep eval --model models/facts --passes 1,2,4,8

$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.runtime

$(RT)/.ok: pyproject.toml
	$(PYTHON) -m venv $(RT)
	$(RT)/bin/python -m pip install -q --upgrade pip
	$(RT)/bin/python -m pip install -q -e . pytest==9.2.0
	touch $@

clean:
	rm -rf $(VENV) $(RT) build *.egg-info
