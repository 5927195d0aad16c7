# One command each on a fresh machine: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The MLTK wheel is the bit-exact oracle for frontend tests and brings Silicon Labs' TFLM
# and MVP simulator (profile --accelerator mvp); --no-deps keeps its TensorFlow 2.16 pin
# out of our environment.
MLTK_ORACLE := silabs-mltk==0.20.0

.PHONY: install dev demo test lint bench clean

# Prints True on a Python 3.11 only (a program that exits 0, /bin/echo, passed an exit-status check).
IS_311 = $(1) -c 'import sys; print(sys.version_info[:2] == (3, 11))' 2>/dev/null | grep -qx True

# The venv, made with a Python 3.11 (a venv another PYTHON made is made again: pip refused every
# later install into it, and nothing said to run `make clean`).
$(VENV)/.python-3.11:
	@if [ -x $(BIN)/python ] && ! $(call IS_311,$(BIN)/python); then \
	  echo "$(VENV) holds $$($(BIN)/python -V 2>&1), not Python 3.11: making it again"; \
	  rm -rf $(VENV); \
	fi
	@if [ ! -x $(BIN)/python ]; then \
	  $(call IS_311,$(PYTHON)) || { \
	    found=$$($(PYTHON) -V 2>/dev/null); case "$$found" in Python*) ;; *) found="not a Python that runs here";; esac; \
	    echo "error: microspeech needs Python 3.11; PYTHON=$(PYTHON) is $$found."; \
	    echo "       Name one: make $(or $(MAKECMDGOALS),install) PYTHON=python3.11"; exit 2; }; \
	  $(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet --upgrade pip; \
	fi
	@# As old as the venv: one made before this marker existed is not installed into again.
	touch -r $(VENV)/pyvenv.cfg $@

# A normal prerequisite, not order-only: a venv made again (its markers gone with it) is
# installed into in the same run.
$(VENV)/.installed: pyproject.toml $(VENV)/.python-3.11
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.python-3.11
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

# make bench BENCH_ARGS="--dataset PATH" (the frontend benchmark's options).
bench: dev
	$(BIN)/python benchmarks/frontend.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info .pytest_cache .ruff_cache .hypothesis
	find src tests benchmarks -name __pycache__ -type d -prune -exec rm -rf {} +
