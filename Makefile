# Both targets create or reuse .venv; the install step reruns only when setup.cfg changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test benchmark clean

$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@echo "compiling the CPU training kernels once (about a minute; cached for every later run)"
	$(PY) -m bindvae.kernels._cache --all
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m experiments.demo

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

benchmark: $(STAMP)
	$(PY) -m experiments.benchmark

clean:
	rm -rf outputs multirun .pytest_cache
