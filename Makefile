# softswitch: `make demo` and `make test` set up everything on a fresh Debian 12 machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the switch, tests and demo use: sipp (sip-tester) and baresip (baresip-core) as real
# SIP peers, espeak-ng for <Say>, kamailio as the SIP edge ([edge], switch/workers/edge.py) with its TLS
# module and its SQLite driver (the edge's database: switch/workers/edge_db.py), openssl for the test
# certificates, chromium and its driver for the web console's browser tests.
DEB_PACKAGES := sip-tester baresip-core espeak-ng kamailio kamailio-tls-modules kamailio-sqlite-modules openssl \
	chromium chromium-driver
# binaries that prove each package above is installed, in the same order
DEB_BINARIES := sipp baresip espeak-ng /usr/sbin/kamailio /usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so \
	/usr/lib/x86_64-linux-gnu/kamailio/modules/db_sqlite.so openssl chromium chromedriver
# what `make engine` builds pjproject and its SWIG module with (switch/tools/engine), and their proving binaries
ENGINE_DEB_PACKAGES := g++ make swig python3-dev
ENGINE_DEB_BINARIES := g++ make swig python3-config
# the twilio-node tier (tests/node, tests/e2e/test_twilio_node_e2e.py): Node.js and npm, when the machine has none
NODE_DEB_PACKAGES := nodejs npm
NODE_DEB_BINARIES := node npm
NODE_DIR := tests/node
# `make test-wheel`: the smoke set that keeps the PyPI wheel supported (calls, <Dial>, recordings, lab phone,
# a conference larger than one worker)
WHEEL_SMOKE := tests/e2e/test_engine_e2e.py tests/e2e/test_calls_e2e.py tests/e2e/test_labphone.py \
	tests/e2e/test_elastic_pool_e2e.py tests/e2e/test_conference_wheel_e2e.py \
	tests/e2e/test_dial_e2e.py::test_dial_bridges_audio_both_ways_and_reports \
	tests/e2e/test_dial_e2e.py::test_dial_without_capacity_fails_cleanly \
	tests/e2e/test_recordings_e2e.py::test_calls_create_records_dual_with_callbacks_and_media

.PHONY: setup deps deps-engine deps-node node-deps engine demo test test-wheel test-fast lint bench serve clean

setup: $(VENV)/.installed deps

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,demo]'
	touch $@

# $(call apt_install,PACKAGES,BINARIES): apt-get install (as root) each package whose binary is missing
define apt_install
	@missing=""; set -- $(2); for pkg in $(1); do \
	  command -v $$1 >/dev/null 2>&1 || test -e $$1 || missing="$$missing $$pkg"; shift; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "softswitch needs these Debian packages: $$missing"; \
	    echo "run: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi
endef

deps:
	$(call apt_install,$(DEB_PACKAGES),$(DEB_BINARIES))

deps-engine:
	$(call apt_install,$(ENGINE_DEB_PACKAGES),$(ENGINE_DEB_BINARIES))

deps-node:
	$(call apt_install,$(NODE_DEB_PACKAGES),$(NODE_DEB_BINARIES))

# the npm `twilio` package pinned in tests/node/package-lock.json, into tests/node/node_modules (git-ignored);
# `npm ci` runs again only when the lock file changes
node-deps: $(NODE_DIR)/node_modules/.installed

$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package-lock.json $(NODE_DIR)/package.json | deps-node
	cd $(NODE_DIR) && npm ci --no-audit --no-fund
	touch $@

# pjproject 2.17 built for a server (1,024 calls, epoll) into $(VENV)/engine; cached in ~/.cache/softswitch/engine.
# Source: $$PJPROJECT_TARBALL, else the upstream release, downloaded and checked against its pinned sha256.
engine: $(VENV)/.installed deps-engine
	$(BIN)/python -m switch.tools.engine

demo: setup
	$(BIN)/softswitch demo

# the whole suite on the built engine, then the smoke set on the PyPI wheel.  Two test processes (one file each
# at a time: most tests wait on real time, not on the CPU), except the benchmark smokes, which measure CPU and run
# alone afterwards.
BENCH_SMOKES := $(sort $(wildcard tests/e2e/test_bench_*.py))
test: setup lint engine node-deps
	SOFTSWITCH_ENGINE=built $(BIN)/python -m pytest -q -p no:cacheprovider --durations=20 -n 2 --dist loadfile \
		$(addprefix --ignore=,$(BENCH_SMOKES)) tests
	SOFTSWITCH_ENGINE=built $(BIN)/python -m pytest -q -p no:cacheprovider --durations=10 $(BENCH_SMOKES)
	$(MAKE) --no-print-directory test-wheel

test-wheel: setup
	SOFTSWITCH_ENGINE=wheel $(BIN)/python -m pytest -q -p no:cacheprovider $(WHEEL_SMOKE)

# the fast tier alone: pure unit tests, no processes or sockets (the slow ones, speech accuracy, run in `make test`)
test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "unit and not slow" tests

lint: $(VENV)/.installed
	$(BIN)/ruff check switch media twiml tests
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: setup
	$(BIN)/softswitch bench

serve: setup
	$(BIN)/softswitch serve

clean:
	rm -rf $(VENV) var build *.egg-info $(NODE_DIR)/node_modules
