# Two commands do all the set-up on a fresh machine with Python >= 3.11:
#   make demo   the main job: an offline streamed completion through the full engine path
#   make test   the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint golden bench bench-smoke bench-setup clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is needed (set PYTHON=python3.11)") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

demo: $(VENV)/.installed
	$(PY) -m engine demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench-smoke: $(VENV)/.installed  ## the benchmark's smoke test: a tiny run, every row and reply check (no timing)
	$(PY) -m pytest -q -m bench

lint: $(VENV)/.installed
	$(PY) -m ruff check engine tests bench
	$(PY) -m mypy

bench: $(VENV)/.installed  ## engine overhead vs raw httpx and peers (bench/README.md), ~5 min on 2 cores
	$(PY) -m bench

bench-setup:  ## optional peers for `make bench` (openai, litellm, httpx2, aiohttp), in their own venv
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet -e '.[bench]'

golden: $(VENV)/.installed
	$(PY) -m pytest -q tests/test_catalog.py --update-golden
	git diff --stat -- tests/golden

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
