# The suite's public interface. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock
EXP ?=
CKPT ?=
BENCHMARK ?=
ARGS ?=
RESUME ?=
SWEEP ?=
TABLE ?=
COUNT ?= 4

.DEFAULT_GOAL := help

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(STAMP) ## Create .venv and install the suite from the lock file (a no-op when up to date)

$(STAMP): setup.cfg pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "pip==26.3"
	$(PY) -m pip install --quiet -c $(LOCK) -e ".[dev]"
	touch $(STAMP)

test: setup ## Run the test suite (what CI runs)
	$(PY) -m pytest -q tests

lint: setup ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy body geometry metrics datamodules lightning_modules experiments

format: setup ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

train: setup ## Train an experiment: make train EXP=name [RESUME=last|auto|PATH] ARGS="trainer.max_steps=10"
	@test -n "$(EXP)" || (echo "usage: make train EXP=<experiment> [RESUME=last] [ARGS='key=value ...']"; exit 2)
	$(PY) -m experiments train $(EXP) $(if $(RESUME),--resume $(RESUME)) $(ARGS)

eval: setup ## Regenerate every paper table (results/tables/); or score one: make eval CKPT=path BENCHMARK=pw3d_test
	@if [ -z "$(CKPT)" ]; then \
		$(PY) -m experiments tables $(ARGS); \
	else \
		test -n "$(BENCHMARK)" || (echo "usage: make eval CKPT=<checkpoint> BENCHMARK=<id> [ARGS='...']"; exit 2); \
		$(PY) -m experiments eval --ckpt $(CKPT) --benchmark $(BENCHMARK) $(ARGS); \
	fi

tables: setup ## Regenerate one paper table: make tables TABLE=pare_table1 [ARGS="--data-root DIR"]
	@test -n "$(TABLE)" || (echo "usage: make tables TABLE=<name in experiments/tables> [ARGS='...']"; exit 2)
	$(PY) -m experiments tables $(TABLE) $(ARGS)

demo: setup ## The main job: mannequin, synthetic world, train pare_tiny, eval, table, overlays (~15 min)
	$(PY) -m experiments demo $(ARGS)

bodynet-chain: setup ## BodyNet's staged training (i)-(v) and its part networks: make bodynet-chain ARGS="trainer.max_steps=10"
	$(PY) -m experiments chain bodynet $(ARGS)

sweep: setup ## Run a sweep: make sweep SWEEP=pare_loss_weights COUNT=8 [ARGS="key=value ..."]
	@test -n "$(SWEEP)" || (echo "usage: make sweep SWEEP=<name in experiments/sweeps> [COUNT=N] [ARGS='...']"; exit 2)
	$(PY) -m experiments sweep $(SWEEP) --count $(COUNT) $(ARGS)

synth: setup ## Write the synthetic world (small) under data/synthetic: make synth [ARGS="--size ci"]
	$(PY) -m experiments synth --out data/synthetic --size small $(ARGS)

bench: setup ## Run the benchmarks; writes results/bench.json and results/bench.md
	mkdir -p results
	$(PY) -m pytest -q benchmarks --benchmark-json=results/bench.json
	$(PY) -m benchmarks.report results/bench.json results/bench.md

clean: ## Remove caches and build outputs (keeps .venv, data, checkpoints and body models)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .benchmarks build dist *.egg-info
	find . -path ./.venv -prune -o -name __pycache__ -type d -print -exec rm -rf {} +

.PHONY: bodynet-chain help setup test lint format train eval tables demo sweep synth bench clean
