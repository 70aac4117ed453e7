# JMO backend: the local stack without Docker, tests and benchmarks.
#   make up      Kafka + FerretDB + the five services on 127.0.0.1 (see README.md)
#   make test    every test, against real Kafka and FerretDB started for the session
# Everything installed lives in the git-ignored .local/ (and .venv/); re-running is cheap.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON3 ?= python3
UV_VERSION := 0.13.9
LOCAL := .local
UV_DIR := $(LOCAL)/uv
UV := $(UV_DIR)/bin/uv
UV_STAMP := $(UV_DIR)/.installed-$(UV_VERSION)
PY := .venv/bin/python
DEVSTACK := $(PY) -m jmo_devstack
PYTEST_ARGS ?=
BENCH ?=
BENCH_LOAD ?=

.PHONY: help install sync tools up down status reset test bench bench-load

help:
	@echo "make install  uv $(UV_VERSION) + uv sync --frozen + Kafka jars + FerretDB (into .local/)"
	@echo "make up       start Kafka, FerretDB and the five services; 'make status', 'make down', 'make reset'"
	@echo "make test     run every test (PYTEST_ARGS=... to pass options)"
	@echo "make bench    run bench/run.py (BENCH=biometric: only the face verification suite)"
	@echo "make bench-load  registrations at 10/25/50/100 per s through the whole stack on free ports (BENCH_LOAD='--rates 10 --duration 5 --growth 10000,200000')"

# uv itself, pinned, in its own venv (a fresh machine has none).
$(UV_STAMP):
	rm -rf $(UV_DIR)
	$(PYTHON3) -m venv $(UV_DIR)
	$(UV_DIR)/bin/pip install --disable-pip-version-check --progress-bar off uv==$(UV_VERSION)
	touch $@

# Bytecode is compiled here, once: this machine kind sets PYTHONDONTWRITEBYTECODE, so without it
# every process (each service, each CLI, each test's stack) compiled ~740 modules from source at
# start (2.0 s of CPU per service process; 0.7 s with bytecode). Re-running is a no-op (mtimes).
sync: $(UV_STAMP)
	$(UV) sync --frozen --compile-bytecode
	$(PY) -m compileall -q -j 0 contracts libs services cli bench > /dev/null

tools: sync
	$(DEVSTACK) install

install: tools

up: install
	$(DEVSTACK) up

# down/status/reset need no install: without a .venv nothing of ours can be running.
down status reset:
	@if [ -x $(PY) ]; then $(DEVSTACK) $@; else echo "no .venv: nothing to $@ (run make install)"; fi

test: install
	.venv/bin/pytest $(PYTEST_ARGS)

bench: install
	$(PY) bench/run.py $(BENCH)

bench-load: install
	$(PY) bench/load.py $(BENCH_LOAD)
