# Two entry points (see README): `make pipeline` and `make test`. Both set up .venv first if needed.
SHELL := /bin/bash
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_PROGRESS_BARS ?= 1
export DVC_NO_ANALYTICS ?= 1
export RAY_USAGE_STATS_ENABLED ?= 0
export TOKENIZERS_PARALLELISM ?= false
PYTEST_ARGS ?=
# make pipeline V=1 streams every line of dvc and the stages (the same as LGVQ_VERBOSE=1).
V ?=

.PHONY: setup pipeline test test-fast bench lint

setup:
	@bash scripts/setup.sh

## The main job: the offline default DVC pipeline (data -> validate -> tune -> train -> evaluate -> report).
## A short console (one line per stage start/end, progress bars, a summary; full logs in reports/logs/);
## `make pipeline V=1` (or LGVQ_VERBOSE=1) streams everything dvc and the stages print instead.
pipeline: setup
	@LGVQ_VERBOSE="$(if $(V),$(V),$${LGVQ_VERBOSE:-0})" bash scripts/pipeline.sh

## The whole test suite (what CI runs), slow tests included, on two pytest-xdist workers.
test: setup
	@python -m pytest -n 2 -m "slow or not slow" $(PYTEST_ARGS)

## The quick suite (slow tests deselected).
test-fast: setup
	@python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; python "$$b" || exit 1; done

lint: setup
	@ruff check packages pipelines tests benchmarks
