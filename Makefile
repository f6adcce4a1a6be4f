# Two commands do everything on a fresh clone: `make demo` and `make test`.
# Each creates .venv if missing and installs the project with torch pinned (constraints.txt).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint clean help

help:
	@echo "make demo   - train a small EDSR teacher on the bundled photos and evaluate it (minutes on 2 cores)"
	@echo "make test   - run the test suite"
	@echo "make bench  - measure latency/peak memory of the reference models, write docs/benchmarks.md"
	@echo "make lint   - ruff"

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/srcompress run recipes/demo.toml

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/reference.py

lint: $(STAMP)
	$(VENV)/bin/ruff check sr_compress tests export benchmarks

clean:
	rm -rf runs .pytest_cache
