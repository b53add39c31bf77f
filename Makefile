# One command sets up and runs the main job; one sets up and runs the tests.
#   make run    -> .venv with pinned deps, weights/all-MiniLM-L6-v2 vendored, submission.csv from data/sample
#   make test   -> same setup, then the whole pytest suite
#   (setup also makes .kaggle/: a Python 3.12 stand-in of Kaggle's image and the bundle's wheels for 3.11-3.13,
#    which the Kaggle rehearsals install from; see docs/kaggle.md)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KIT := $(BIN)/jigsaw-kit

# Kaggle's image runs Python 3.12 (Kaggle/docker-python 4ae73d1): the newest 3.12 that pyenv or PATH offers.
PY312 ?= $(shell for v in $$(pyenv versions --bare 2>/dev/null | grep -E '^3\.12(\.[0-9]+)?$$'); do \
	echo "$$(pyenv root)/versions/$$v/bin/python3.12"; done | tail -n 1; command -v python3.12 2>/dev/null)
IMAGE := .kaggle/py312

.PHONY: setup run test lint cv clean

setup: $(VENV)/.installed $(IMAGE)/.installed .kaggle/wheels/.done

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(IMAGE)/.installed: kernel/image-py312.txt
	@py="$(word 1,$(PY312))"; test -x "$$py" || { echo "no Python 3.12 found (pyenv install 3.12, or PY312=...)"; exit 1; }; \
	"$$py" -m venv --clear $(IMAGE) && $(IMAGE)/bin/pip install -q -r kernel/image-py312.txt
	touch $@

.kaggle/wheels/.done: requirements.lock | $(VENV)/.installed
	mkdir -p .kaggle/wheels && $(BIN)/python -c "from jigsaw_kit.kaggle.bundling import download_wheels as d; \
	d('.kaggle/wheels')" > .kaggle/download.log
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
