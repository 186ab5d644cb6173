# softswitch: `make demo` and `make test` set up everything on a fresh Debian 12 machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the switch, tests and demo use: sipp (sip-tester) and baresip (baresip-core) as real
# SIP peers, espeak-ng for <Say>.
DEB_PACKAGES := sip-tester baresip-core espeak-ng
# binaries that prove each package above is installed, in the same order
DEB_BINARIES := sipp baresip espeak-ng

.PHONY: setup deps demo test test-fast lint bench serve clean

setup: $(VENV)/.installed deps

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

deps:
	@missing=""; set -- $(DEB_BINARIES); for pkg in $(DEB_PACKAGES); do \
	  command -v $$1 >/dev/null 2>&1 || missing="$$missing $$pkg"; shift; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "softswitch needs these Debian packages: $$missing"; \
	    echo "run: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

demo: setup
	$(BIN)/softswitch demo

test: setup lint
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

# the fast tier alone: pure unit tests, no processes or sockets
test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -q -p no:cacheprovider -m unit tests

lint: $(VENV)/.installed
	$(BIN)/ruff check switch media twiml tests
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: setup
	$(BIN)/softswitch bench

serve: setup
	$(BIN)/softswitch serve

clean:
	rm -rf $(VENV) var build *.egg-info
