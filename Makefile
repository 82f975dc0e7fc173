# Two entry points: `make demo` and `make test`. Both create .venv once and reuse it, installing the
# tested versions pinned in requirements/constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONSTRAINTS := requirements/constraints.txt
STAMP := $(VENV)/.installed
# test-latest: the newest releases in their own venv. torch stays at the CPU build that lies on
# disk on CPU machines (newer wheels are multi-GB CUDA builds); LATEST_TORCH=torch takes the newest.
LATEST := .venv-latest
LATEST_TORCH ?= torch==2.13.0
# test-oldest: the pinned set with the oldest transformers that setup.cfg claims.
OLDEST := .venv-oldest
OLDEST_TRANSFORMERS ?= transformers==5.6.0
CHECKED := geomalign tests benchmarks examples

.PHONY: demo test lint test-latest test-oldest pins clean

# install VENV,PIP-OPTIONS,TORCH: the venv, then torch first unless one is importable (a bare
# `torch` requirement would pull a multi-GB CUDA build on CPU machines; a CPU wheel lies on disk),
# then the package and its extras (with TORCH, so that it stays), built without isolation so that
# the venv's setuptools builds it.
define install
	test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet $(2) pip setuptools
	$(1)/bin/python -c "import torch" 2>/dev/null || $(1)/bin/python -m pip install --quiet $(2) "$(3)"
	$(1)/bin/python -m pip install --quiet --no-build-isolation $(2) "$(3)" -e ".[hf,dev]"
endef

# run-checks VENV: the checks that `make test` runs (lint, format, doctests, the test suite).
define run-checks
	$(1)/bin/ruff check $(CHECKED)
	$(1)/bin/ruff format --check $(CHECKED)
	$(1)/bin/python -m pytest -q --doctest-modules geomalign
	$(1)/bin/python -m pytest -q -n 2 tests
endef

$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	$(call install,$(VENV),-c $(CONSTRAINTS),torch)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/geomalign demo --out geomalign-demo

test: $(STAMP)
	$(call run-checks,$(VENV))

lint: $(STAMP)
	$(BIN)/ruff check $(CHECKED)
	$(BIN)/ruff format --check $(CHECKED)
	$(BIN)/python -m mypy

test-latest:
	$(call install,$(LATEST),--upgrade --upgrade-strategy eager,$(LATEST_TORCH))
	$(LATEST)/bin/python -m pip list --format=freeze | grep -iE "^(torch|transformers|numpy)=="
	$(call run-checks,$(LATEST))

test-oldest:
	$(call install,$(OLDEST),-c $(CONSTRAINTS),torch)
	$(OLDEST)/bin/python -m pip install --quiet "$(OLDEST_TRANSFORMERS)"
	$(OLDEST)/bin/python -m pip list --format=freeze | grep -iE "^(torch|transformers|numpy)=="
	$(call run-checks,$(OLDEST))

# Write the versions of the test-latest venv as the new pins (run `make test-latest` first).
pins:
	test -x $(LATEST)/bin/python
	{ sed -n '1,2p' $(CONSTRAINTS); $(LATEST)/bin/python -m pip freeze --all --exclude-editable \
		| grep -v '^#' | sed 's/+cpu$$//'; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

clean:
	rm -rf $(VENV) $(LATEST) $(OLDEST)
