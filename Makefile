# Two entry points: `make demo` and `make test`. Both create .venv once and reuse it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# A CPU wheel of torch lies on disk on CPU machines; a bare `torch` would pull a multi-GB CUDA build.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[hf,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/geomalign demo --out geomalign-demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 tests

lint: $(STAMP)
	$(BIN)/ruff check geomalign tests benchmarks examples
	$(BIN)/ruff format --check geomalign tests benchmarks examples

clean:
	rm -rf $(VENV)
