# Quick start: `make run` (train the disentangled proxy model on the embedded dataset)
# and `make test`. Both create .venv and install everything first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA_DIR ?= $(HOME)/tensorflow_datasets
CONFIG ?= configs/proxy_dis.py
WORKDIR ?= runs/proxy_dis

.PHONY: install run test test-fast bench-smoke clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m pip install -q --no-deps "tinysoundfont>=0.3.7,<0.4"
	touch $@

run: install
	$(PY) -m musicrep_jax.main --config=$(CONFIG) --workdir=$(WORKDIR) --config.data_dir=$(DATA_DIR)

test: install
	$(PY) -m pytest -q -n 2 --dist worksteal --durations=15 tests

test-fast: install  # unit tests only (no end-to-end subprocess runs): under 2 minutes
	$(PY) -m pytest -q -n 2 --dist worksteal -m "not slow" tests

clean:
	rm -rf $(VENV) runs
