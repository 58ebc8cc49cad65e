# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
SYSTEM_PACKAGES := chromium fonts-noto-cjk poppler-utils librsvg2-bin

.PHONY: run test system-deps clean bench

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	$(VENV)/bin/brandvote serve

# Browser tests drive Debian's chromium; Chinese needs CJK fonts. Installed when root.
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing (run as root, or: sudo apt-get install$$missing)"; exit 1; \
	  fi; \
	fi

test: $(TEST_STAMP) system-deps
	$(PY) -m pytest -q

# Load and timing figures (not part of `make test`): wrk against 127.0.0.1, bounded runs.
bench: $(TEST_STAMP)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	@[ -x bench/.venv-datasette/bin/datasette ] || { $(PYTHON) -m venv bench/.venv-datasette && bench/.venv-datasette/bin/pip install -q datasette; }
	$(PY) bench/run.py
	$(PY) bench/tally_1m.py

clean:
	rm -rf $(VENV) .pytest_cache .artifacts
