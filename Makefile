# `make demo` runs the main job; `make test` runs the whole suite. Both set up ./.venv first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test bench

setup:
	bash scripts/setup_env.sh

demo: setup
	$(PY) -m trainlab.commands.demo

test: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) benchmarks/run.py
