# fitlab: `make lab` opens the workbook, `make test` runs every test.
# Both create .venv and install fitlab into it on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Use the course's copy of the archive when it sits beside the repository;
# otherwise fitlab looks in its data dir or downloads the official archive.
SHARED_ARCHIVE := $(wildcard $(abspath ../shared/data/17flowers.tgz))
ifneq ($(SHARED_ARCHIVE),)
export FITLAB_FLOWERS17_ARCHIVE ?= $(SHARED_ARCHIVE)
endif

# JupyterLab refuses to run as root unless told to (containers, CI machines).
ifeq ($(shell id -u),0)
LAB_FLAGS += --allow-root
endif

PYTEST_NOTEBOOKS := --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=600

.PHONY: install data lab test train bench lint clean workbook

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@

install: $(STAMP)

data: install
	$(BIN)/python -m fitlab data

lab: data
	$(BIN)/jupyter lab --ip=127.0.0.1 --notebook-dir=notebooks $(LAB_FLAGS)

# Every notebook run in the full profile on the real data, outputs and widget state
# stored (hours; on a quiet machine). `make workbook WORKBOOK_ARGS="--only 02_fit"`
# for some of them; --anyway on a busy machine (see tools/workbook.py).
WORKBOOK_ARGS ?=
workbook: data
	$(BIN)/python tools/workbook.py $(WORKBOOK_ARGS)

# The tests, the docstring examples of every module (--doctest-modules) and the notebooks;
# then, in a process of its own (Keras picks its backend once), the JAX tests and the
# loops' examples on JAX. The slowest tests are listed at the end (--durations).
test: install
	FITLAB_PROFILE=smoke $(BIN)/python -m pytest tests fitlab notebooks --doctest-modules \
		$(PYTEST_NOTEBOOKS) --durations=25
	KERAS_BACKEND=jax $(BIN)/python -m pytest tests/jax fitlab/loops --doctest-modules

# The tutorial's train.py; `make train METHOD=loop RECIPE=improved` for the others.
METHOD ?= generator
RECIPE ?= tutorial
train: data
	$(BIN)/python -m fitlab train --method $(METHOD) --recipe $(RECIPE) --epochs 75 --batch-size 32 \
		--seed 42 --out runs/$(RECIPE)-$(METHOD)

bench: data
	$(BIN)/python -m fitlab bench build
	$(BIN)/python -m fitlab bench pipeline
	$(BIN)/python -m fitlab bench loops
	$(BIN)/python -m fitlab bench live
	$(BIN)/python -m fitlab bench faults
	$(BIN)/python -m fitlab bench gpu
	KERAS_BACKEND=jax $(BIN)/python -m fitlab bench gpu
	$(BIN)/python -m fitlab bench distributed

lint: install
	$(BIN)/ruff check fitlab tests examples notebooks tools

clean:
	rm -rf $(VENV) runs artifacts .pytest_cache
