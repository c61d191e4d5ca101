# The two commands a newcomer needs: `make demo` and `make test`. Both install first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.rlmine-installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test bench lint browser clean-demo

# torch is pinned to the CPU build that pip finds on these machines, and installed
# before sentence-transformers; otherwise pip resolves a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[miner,browser,dev,ray]'
	touch $(STAMP)

install: $(STAMP)

# Debian's chromium for the dashboard's browser test (no browser download).
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "chromium could not be installed: the browser tests will be skipped"; \
	else echo "no /usr/bin/chromium and no root apt-get: the browser tests will be skipped"; fi

demo: install
	$(VENV)/bin/rlmine demo

test: install browser
	$(PY) -m pytest -q -p no:cacheprovider

bench: install
	@set -e; for f in bench/*_bench.py; do echo "== $$f"; $(PY) $$f; done

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
