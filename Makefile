# One command each on a fresh machine: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The MLTK wheel is the bit-exact oracle for frontend tests and brings Silicon Labs' TFLM
# and MVP simulator (profile --accelerator mvp); --no-deps keeps its TensorFlow 2.16 pin
# out of our environment.
MLTK_ORACLE := silabs-mltk==0.20.0

.PHONY: install dev demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps $(MLTK_ORACLE)
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/python -m microspeech.demo

lint: dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python tests/check_layers.py src/microspeech

test: lint
	$(BIN)/pytest -n 2 --dist loadgroup tests

bench: dev
	$(BIN)/python benchmarks/frontend.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
