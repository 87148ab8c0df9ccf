# deeplimit developer commands. Everything installs into a local virtual environment (.venv)
# from nothing but python3; torch is pinned to the CPU build that pip finds on these machines.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_PIN ?= torch==2.13.0
# pytest-xdist workers for the test targets. --dist loadscope runs a module's tests on one
# worker, so a module fixture (the SLURM cluster, the smoke-scale suites) is built once; the
# modules go out in collection order, longest first (tests/conftest.py). Three workers on two
# cores: the SLURM, subprocess and browser tests wait much of their time, and a third worker
# keeps both cores busy meanwhile (2-core AMD EPYC, 2026-12-03: 5 min 11 s with two, 4 min 33
# s with three)
JOBS ?= 3
XDIST := -n $(JOBS) --dist loadscope --no-loadscope-reorder

.PHONY: install demo test test-all docs lint format bench clean

# pip prints one line per package as it goes (a fresh install takes a few minutes)
$(STAMP): pyproject.toml
	@echo "install 1/2: the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@echo "install 2/2: $(TORCH_PIN) (CPU build, about 200 MB) and deeplimit with its dependencies"
	$(BIN)/python -m pip install --disable-pip-version-check --progress-bar off "$(TORCH_PIN)" -e ".[dev]"
	touch $(STAMP)
	@echo "installed: run 'source $(VENV)/bin/activate' to put deeplimit on your PATH (or call $(BIN)/deeplimit)"

install: $(STAMP)

## demo: install, then reproduce Hayou's Fig. 1 (width-1 ReLU ResNet vs the GBM law)
demo: $(STAMP)
	$(BIN)/deeplimit reproduce hayou-fig1 --out results/demo

## test: install, then run the default (fast) test suite
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q $(XDIST)

## test-all: every test, paper-scale ones included
test-all: $(STAMP)
	$(BIN)/python -m pytest -q $(XDIST)

## docs: build the documentation site strictly into site/ (open site/index.html); the first
## build also draws both papers' figures at smoke scale into build/docs-figures (~2 min)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(BIN)/mkdocs build --strict

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_sampler.py

clean:
	rm -rf $(VENV) results site build/docs-figures .pytest_cache .ruff_cache
