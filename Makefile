# `make demo`: set up .venv and train UNIT on MNIST <-> USPS for a few minutes.
# `make test`: set up .venv and run the test suite (what CI runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The data root: ../shared/data when it exists beside the checkout, else the user's own setting/cache.
SHARED_DATA := $(abspath ../shared/data)
export UNPAIRED_DATA ?= $(if $(wildcard $(SHARED_DATA)/README.md),$(SHARED_DATA),)
ifeq ($(UNPAIRED_DATA),)
unexport UNPAIRED_DATA
endif

.PHONY: setup demo test lint bench clean

$(BIN)/unpaired: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch is pinned (torch==2.13.0) in pyproject: the CPU build from the local wheel store
	$(BIN)/pip install --quiet -e '.[dev]'
	# torch-fidelity and lpips: the tests' references for FID/KID/IS and LPIPS (test-only). --no-deps: their metadata
	# requires torchvision, which has no build here and would pull another torch; the code the tests use needs only
	# torch, numpy, scipy and tqdm (installed above); lpips also ships LPIPS v0.1's weights file the tests read
	$(BIN)/pip install --quiet --no-deps 'torch-fidelity==0.4.0' 'lpips==0.1.4'
	touch $@

setup: $(BIN)/unpaired

demo: setup
	$(BIN)/unpaired demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python bench/train_speed.py

clean:
	rm -rf $(VENV) runs .pytest_cache
