# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Each makes its own virtual environment (.venv) and installs what it needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: demo test eval clean

demo: $(VENV)/.runtime
	$(VENV)/bin/edgesleep demo

test: $(VENV)/.dev
	$(PY) -m pytest -q

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

clean:
	rm -rf $(VENV) build *.egg-info
