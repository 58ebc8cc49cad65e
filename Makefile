# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
# nginx: tests/test_slow_clients.py runs deploy/nginx.conf in front of the app.
SYSTEM_PACKAGES := chromium fonts-noto-cjk poppler-utils librsvg2-bin openjdk-17-jre-headless nginx
# Outside checkers from npm (axe-core, vnu.jar), pinned by tools/package-lock.json.
TOOLS := tools
TOOLS_STAMP := $(TOOLS)/node_modules/.installed

.PHONY: run test test-quick system-deps audit clean bench

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# setuptools warns on every editable install that a folder named like the package could
# shadow it; ours is site/, so the notice is noise that makes a good install look broken.
QUIET_EDITABLE := PYTHONWARNINGS="ignore:Editable installation"

$(RUN_STAMP): pyproject.toml | $(PY)
	$(QUIET_EDITABLE) $(PY) -m pip install -q -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(PY)
	$(QUIET_EDITABLE) $(PY) -m pip install -q -e '.[test]'
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
	@command -v npm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing: nodejs npm"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	  else \
	    echo "npm is missing (run as root, or: sudo apt-get install nodejs npm)"; exit 1; \
	  fi; }

# axe-core (injected into chromium) and the Nu HTML checker (vnu.jar, run with Java 17).
# --ignore-scripts: vnu-jar's postinstall would download a Java; the system one is used.
$(TOOLS_STAMP): $(TOOLS)/package.json $(TOOLS)/package-lock.json | system-deps
	npm ci --prefix $(TOOLS) --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

test: $(TEST_STAMP) system-deps $(TOOLS_STAMP)
	$(PY) -m pytest -q

# No browser journeys and no slow crash rounds. The npm checkers stay: test_html_valid
# runs vnu.jar outside tests/browser.
test-quick: $(TEST_STAMP) system-deps $(TOOLS_STAMP)
	BRANDVOTE_QUICK=1 $(PY) -m pytest -q --ignore=tests/browser

# Load and timing figures (not part of `make test`): wrk against 127.0.0.1, bounded runs.
bench: $(TEST_STAMP)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	@[ -x bench/.venv-datasette/bin/datasette ] || { $(PYTHON) -m venv bench/.venv-datasette && bench/.venv-datasette/bin/pip install -q datasette; }
	$(PY) bench/run.py
	$(PY) bench/ballot_growth.py
	$(PY) bench/writer_cost.py
	$(PY) bench/tally_1m.py

# wapiti against a demo on a free loopback port, in its own venv; not part of `make test`.
audit: $(RUN_STAMP)
	sh scripts/audit.sh

clean:
	rm -rf $(VENV) .pytest_cache .artifacts $(TOOLS)/node_modules $(TOOLS)/wapiti-venv
