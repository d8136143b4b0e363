# Two commands for a new user: `make demo` and `make test`. Everything else is for developers.
# The venv is built from pinned files; torch is pinned to the CPU wheel that this machine has on
# disk (an unpinned torch would pull a multi-GB CUDA build). Users installing the package itself
# get the open ranges of pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed
SLOW_TIMEOUT ?= 2400

.PHONY: install demo demo-full test test-slow lint format bench bench-core bench-torch experiments clean

install: $(STAMP)

$(STAMP): requirements/lock.txt requirements/nodeps.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIN) -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m adapters.torch.finetune demo

demo-full: $(STAMP)
	$(BIN)/python -m adapters.torch.finetune demo --full

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow" -q --doctest-modules --doctest-glob='*.md' mpo tests README.md docs/concepts.md

test-slow: $(STAMP)
	timeout $(SLOW_TIMEOUT) $(BIN)/python -m pytest -m slow -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: bench-core bench-torch

bench-core: $(STAMP)
	$(BIN)/python benchmarks/bench_core.py --out docs/benchmarks-core.md

bench-torch: $(STAMP)
	$(BIN)/python benchmarks/bench_torch.py --out docs/benchmarks-torch.md

experiments: $(STAMP)
	$(BIN)/python benchmarks/experiments.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache build *.egg-info
