# One command sets up and runs the main job; one sets up and runs the tests.
#   make run    -> .venv with pinned deps, weights/all-MiniLM-L6-v2 vendored, submission.csv from data/sample
#   make test   -> same setup, then the whole pytest suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KIT := $(BIN)/jigsaw-kit

.PHONY: setup run test lint cv clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

weights/all-MiniLM-L6-v2/config.json: | setup
	$(KIT) vendor

run: setup weights/all-MiniLM-L6-v2/config.json
	$(KIT) run --data-dir data/sample --config cpu-contrastive --output submission.csv

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests build_dataset.py

clean:
	rm -rf runs data/processed submission.csv
