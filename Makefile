# tuneyard's one task runner: CI runs these targets verbatim.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first and pinned; later installs keep it through a
# constraint so set-up never pulls a multi-GB CUDA build by accident.
# A GPU user overrides it, e.g. `make setup TORCH_SPEC="torch==2.13.0 --index-url ..."`.
TORCH_SPEC ?= torch==2.13.0
CONSTRAINTS := $(VENV)/torch-constraint.txt
STAMP := $(VENV)/.setup-stamp
# The test suite runs once on SQLite and once on PostgreSQL (the tests whose
# behaviour depends on the database, and the end-to-end modules, which run
# only there). Two xdist processes share the two cores; each torch gets one
# thread so they do not fight over them.
TEST_PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=
XDIST ?= -n 2 --dist loadfile
TEST_ENV := HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
# The real Emissary SDK pins old pydantic/httpx, so it lives in its own
# virtualenv that tuneyard never imports; end-to-end tests run it as a child.
EMISSARY_VENV ?= .venv-emissary
# The dashboard's third-party front-end code (htmx, uPlot): pinned in
# package-lock.json, installed by npm, copied here (git-ignored) and served
# by tuneyard itself, so the dashboard works offline.
WEB_VENDOR := src/tuneyard/web/static/vendor
WEB_ASSETS := node_modules/htmx.org/dist/htmx.min.js node_modules/uplot/dist/uPlot.iife.min.js \
	node_modules/uplot/dist/uPlot.min.css

.PHONY: setup test test-fast test-faults serve demo demo-cluster lint bench clean

setup: $(STAMP) $(WEB_VENDOR)/.stamp

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(CONSTRAINTS)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[test]"
	touch $(STAMP)

test: setup $(EMISSARY_VENV)/.stamp
	$(TEST_ENV) TUNEYARD_TEST_DATABASE_URL= $(BIN)/python -m pytest $(XDIST) -m "not e2e and not faults" $(PYTEST_ARGS)
	$(TEST_ENV) TUNEYARD_TEST_DATABASE_URL=$(TEST_PG_URL) TUNEYARD_TEST_REQUIRE_DB=1 \
		$(BIN)/python -m pytest $(XDIST) -m "postgres and not faults" $(PYTEST_ARGS)

# Long fault-injection runs kept out of `make test`'s budget (a killed Ray worker).
test-faults: setup $(EMISSARY_VENV)/.stamp
	$(TEST_ENV) TUNEYARD_TEST_DATABASE_URL=$(TEST_PG_URL) TUNEYARD_TEST_REQUIRE_DB=1 \
		$(BIN)/python -m pytest -m faults $(PYTEST_ARGS)

# The inner loop: everything that neither trains nor starts a server, on SQLite.
test-fast: setup
	$(TEST_ENV) TUNEYARD_TEST_DATABASE_URL= $(BIN)/python -m pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

serve: setup
	$(BIN)/tuneyard serve

# The first-run tour (a few minutes on 2 CPU cores): a server with its own home
# in .tuneyard-demo/, fine-tune, evaluate, deploy, complete. KEEP=1 leaves the
# server running afterwards; PORT=... picks another port than 8765.
demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/tuneyard demo $(if $(KEEP),--keep,) $(if $(PORT),--port $(PORT),)

# The same tour on a local S3 server (SeaweedFS), a local Ray head and PostgreSQL
# (DEMO_DATABASE_URL, default the local server's tuneyard_demo database),
# training with 2 Ray Train workers. Offline. See docs/scale-out.md.
demo-cluster: setup
	HF_HUB_OFFLINE=1 $(BIN)/python scripts/demo_cluster.py

# Benchmarks (not tests: CI runs only their smoke test). Each figure is a ratio
# against a baseline measured in the same run; see bench/RESULTS.md.
bench: setup
	bash bench/setup.sh
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench.run $(BENCH_ARGS)

lint: setup
	$(BIN)/ruff check src tests bench docs

clean:
	rm -rf $(VENV) .pytest_cache node_modules $(WEB_VENDOR)

$(WEB_VENDOR)/.stamp: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	mkdir -p $(WEB_VENDOR)
	cp $(WEB_ASSETS) $(WEB_VENDOR)/
	touch $@

# The real Emissary SDK (see EMISSARY_VENV above).
$(EMISSARY_VENV)/.stamp:
	test -x $(EMISSARY_VENV)/bin/python || $(PYTHON) -m venv $(EMISSARY_VENV)
	$(EMISSARY_VENV)/bin/python -m pip install --quiet "emissary-client-sdk==0.4.4"
	touch $@
