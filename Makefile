# Two commands do everything on a fresh clone: `make demo` and `make test`.
# Each creates .venv if missing and installs the project with torch pinned (constraints.txt).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench ail-repro data-scale bench-table proof proof-table lint clean help

help:
	@echo "make demo   - train a small EDSR teacher on the bundled photos, evaluate, export and bench it"
	@echo "make test   - run the test suite"
	@echo "make bench  - measure latency/peak memory of the reference models, write docs/benchmarks.md"
	@echo "make ail-repro - AIL/KD/PSPL on the released VDSR (13-ch student) + PSPL convergence (~10 min, 1 thread)"
	@echo "make data-scale - DIV2K-size synthetic folder (800 images, in /tmp): cache build, loader, training RSS"
	@echo "make bench-table - the VDSR teacher's Set5/Set14/B100 table (x2/x3/x4) from one evaluate_table call"
	@echo "make proof  - issue #16: published SR nets vs students distilled from IMDN on train291 (~4 h on 2 shared cores;"
	@echo "               PROOF_RUNS=dir keeps runs; make proof-table rebuilds docs/results.md from them)"
	@echo "make lint   - ruff"

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing srcompress into $(VENV) (torch pinned by constraints.txt; log in $(VENV)/install.log)"
	@$(PY) -m pip install -c constraints.txt -e '.[dev]' > $(VENV)/install.log 2>&1 \
		|| { tail -n 30 $(VENV)/install.log; echo "install failed: see $(VENV)/install.log"; exit 1; }
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/srcompress run recipes/demo.toml

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/reference.py

ail-repro: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) benchmarks/ail_reproduction.py --out docs/ail_reproduction.md

data-scale: $(STAMP)
	$(PY) benchmarks/data_scale.py --root /tmp/srcompress_div2k_synth --out /tmp/srcompress_data_scale.json

bench-table: $(STAMP)
	$(PY) benchmarks/benchmark_table.py table --out /tmp/srcompress_benchmark_table
	$(PY) benchmarks/benchmark_table.py agree --out /tmp/srcompress_benchmark_table

PROOF_RUNS ?= runs/proof
proof: $(STAMP)
	OMP_NUM_THREADS=1 PYTHONPATH=. $(PY) benchmarks/zoo.py --work $(PROOF_RUNS) -v

proof-table: $(STAMP)
	PYTHONPATH=. $(PY) benchmarks/zoo.py --work $(PROOF_RUNS) --table-only

lint: $(STAMP)
	$(VENV)/bin/ruff check sr_compress tests export benchmarks

clean:
	rm -rf runs .pytest_cache
