# The two commands of the README: `make run` and `make test`. Both install what they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 5000
WORKERS ?= 3
# Debian packages: fonts and HarfBuzz subsetting for the PDF reports, poppler for checking them,
# Chromium for the browser tests, Orthanc with its DICOMweb plugin as the interop peer (and
# its PostgreSQL index, as in the scaled-out layout: tests/test_pacs_store_pg_index.py; gcc
# builds the small preloaded bind() that keeps Orthanc on loopback: tests/orthanc_loopback.c),
# dcmtk's storescu/echoscu as the DICOM network peer, redis-server as the job queue's backend
# (the tests start their own on a free loopback port: tests/redis_server.py), nginx in front
# of two app servers (tests/test_two_servers.py starts its own). The packages' own services
# are neither started nor enabled by the install (scripts/ensure-debs.sh).
RUN_DEBS := fonts-dejavu-core fonts-noto-core libharfbuzz-subset0 libpango-1.0-0 libpangoft2-1.0-0
TEST_DEBS := $(RUN_DEBS) chromium poppler-utils orthanc orthanc-dicomweb orthanc-postgresql gcc \
	libc6-dev dcmtk redis-server nginx

.PHONY: run test lint bench install ohif system-deps-run system-deps-test clean

$(STAMP): pyproject.toml setup.py
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,demo]'
	@touch $(STAMP)

install: $(STAMP)

# OHIF's prebuilt viewer (served at /viewer/ohif/): the pinned @ohif/app from the npm registry,
# checked by its sha512 and unpacked into vendor/ohif (ignored, never committed; a no-op once
# there). Without it the portal runs and its own viewer works; /viewer/ohif/ answers 503.
ohif:
	@python3 qaportal/ohif/fetch.py || echo "make: continuing without the OHIF viewer (see the error above)"

system-deps-run:
	@bash scripts/ensure-debs.sh $(RUN_DEBS)

system-deps-test:
	@bash scripts/ensure-debs.sh $(TEST_DEBS)

# E-mail links point where this serves (QAPORTAL_BASE_URL, when set, wins). gunicorn and
# the job worker (`qaportal worker`) run from scripts/serve.sh, which stops both together.
run: export QAPORTAL_SERVED_URL = http://$(HOST):$(PORT)
run: $(STAMP) system-deps-run ohif
	QAPORTAL_LOCAL=1 $(VENV)/bin/qaportal db upgrade
	@if [ "$${QAPORTAL_DEMO:-1}" != "0" ]; then QAPORTAL_LOCAL=1 $(VENV)/bin/qaportal demo; fi
	@echo "Serving qaportal on http://$(HOST):$(PORT) with a job worker (Ctrl-C to stop)"
	QAPORTAL_LOCAL=1 exec scripts/serve.sh $(VENV) $(HOST):$(PORT) $(WORKERS)

lint: $(STAMP)
	$(VENV)/bin/ruff check qaportal tests benchmarks migrations/env.py

# SQLite always; PostgreSQL too when QAPORTAL_TEST_DATABASE_URL is set (CI sets it). The
# PostgreSQL pass runs only the tests that reach that database (--postgres-only, tests/conftest.py):
# the others would run exactly as in the SQLite pass. Both passes run on every core
# (pytest-xdist): a worker per core, each test file whole on one worker so that a module's
# shared world is built once; each worker has its own PostgreSQL database, SQLite template,
# Redis and browser. TEST_WORKERS=0 runs in one process (e.g. with a debugger).
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
XDIST := $(if $(filter 0,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS) --dist loadfile)
test: $(STAMP) system-deps-test ohif lint
	env -u QAPORTAL_TEST_DATABASE_URL $(PY) -m pytest $(XDIST) $(PYTEST_ARGS)
	@if [ -n "$${QAPORTAL_TEST_DATABASE_URL:-}" ]; then \
		echo "== again on PostgreSQL ($${QAPORTAL_TEST_DATABASE_URL})"; \
		$(PY) -m pytest -m "not e2e and not slow" --postgres-only $(XDIST) $(PYTEST_ARGS); \
	fi

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache test-artifacts
