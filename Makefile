# Quick start targets. Each does all its own set-up from a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
ASSETS := gateway/web/static/govuk-frontend.version

# The real PostgreSQL server of this machine; the PostgreSQL tests fail (not skip) when it cannot be reached.
export GATEWAY_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: demo test bench clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP) $(ASSETS)
	$(BIN)/gateway demo

test: $(STAMP) browser $(NODE_STAMP) $(ASSETS)
	$(BIN)/pytest

# Node packages (package-lock.json): GOV.UK Frontend for the console; Medplum's FHIR validator for the
# conformance test and axe-core for the console's accessibility checks.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# The console's assets: GOV.UK Frontend's compiled CSS, JS, fonts and images copied from node_modules
# into gateway/web/static/ (gateway/web/assets.py); nothing is fetched at run time.
$(ASSETS): $(NODE_STAMP) $(STAMP) $(wildcard gateway/web/static_src/*)
	$(BIN)/python -m gateway.web.assets

# Page tests drive a real headless browser: Debian's chromium through its chromedriver.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		echo "installing Debian's chromium and chromium-driver for the page tests"; \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium chromium-driver >/dev/null; \
	fi

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) var out
