# The two commands: `make demo` and `make test`. Both create the environment first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck scan unit env native bench bench-deps clean lock oidc-provider browser

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

# The guard's compiled engine (mypyc; tools/build_native.py, loaded by rempart.guard.native):
# compiled when its sources changed since the last build, kept when not. A failed build
# removes the stale one. Outside CI make goes on with a warning, and the pure-Python engine
# runs (same decisions, slower); under CI (CI set to 1, true or yes, as the tests read it)
# the run fails: the tests must exercise the engine the replay uses.
native: $(STAMP)
	@$(BIN)/python tools/build_native.py build || { \
		case "$$(printf '%s' "$$CI" | tr '[:upper:]' '[:lower:]')" in \
			1|true|yes) echo "native: the guard's compiled engine did not build; under CI this fails the run" >&2; exit 1;; \
		esac; \
		echo "native: warning: the guard's compiled engine did not build; the pure-Python engine runs (same decisions, slower)" >&2; \
	}

env: $(STAMP) native

# The local OpenID Connect provider (npm's oidc-provider on Node.js) the Pro Santé
# Connect tests log in against; reinstalled from the lock when it changes.
OIDC_TOOL := tools/oidc-provider
OIDC_STAMP := $(OIDC_TOOL)/node_modules/.installed

$(OIDC_STAMP): $(OIDC_TOOL)/package.json $(OIDC_TOOL)/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: the PSC tests will skip (and fail under CI)"; exit 0; }; \
	npm ci --prefix $(OIDC_TOOL) --no-audit --no-fund && touch $(OIDC_STAMP)

oidc-provider: $(OIDC_STAMP)

demo: $(STAMP) native $(OIDC_STAMP)
	$(BIN)/rempart demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools

typecheck: $(STAMP)
	$(BIN)/mypy

# Debian's Chromium, which the browser tests (tests/browser) drive through Playwright:
# installed with apt when missing. Playwright's own browser download is never used. When
# it cannot be installed, make says why and goes on: the browser tests then skip (and
# fail under CI).
browser:
	@command -v chromium >/dev/null && exit 0; \
	if ! command -v apt-get >/dev/null; then \
		echo "browser: chromium is missing and there is no apt-get to install it: the browser tests will skip (and fail under CI)"; \
	elif [ "$$(id -u)" != 0 ]; then \
		echo "browser: chromium is missing; installing it needs root (sudo apt-get install chromium): the browser tests will skip (and fail under CI)"; \
	else \
		echo "browser: installing Debian's chromium"; \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; } \
			|| echo "browser: apt-get could not install chromium: the browser tests will skip (and fail under CI)"; \
	fi

unit: $(STAMP) native $(OIDC_STAMP) browser
	$(BIN)/pytest -q

# Supply chain and code scanning. bandit on src/: medium and high severity fail the run
# (pyproject's [tool.bandit]); its warnings about `# nosec` lines that hold several nodes
# are shown only when it fails. The secrets scan: every file git knows against the audited
# .secrets.baseline (tools/scan_secrets.py). pip-audit on requirements.lock, with the
# exceptions of security/pip-audit-exceptions.toml (tools/audit_dependencies.py): an
# incomplete audit (no vulnerability service) warns outside CI, fails under CI unless
# REMPART_AUDIT_OFFLINE gives the reason.
scan: $(STAMP)
	@$(BIN)/bandit -c pyproject.toml -r src -q --severity-level medium 2>$(VENV)/bandit.log \
		|| { cat $(VENV)/bandit.log >&2; rm -f $(VENV)/bandit.log; exit 1; }; \
	rm -f $(VENV)/bandit.log; echo "bandit: src/ clean at medium severity and above"
	$(BIN)/python tools/scan_secrets.py
	$(BIN)/python tools/audit_dependencies.py

test: lint typecheck scan unit

# System tools the benchmarks need (wrk, the HTTP load generator), installed when missing.
bench-deps:
	command -v wrk || (apt-get update && apt-get install -y wrk)

bench: $(STAMP) native bench-deps
	$(BIN)/python -m bench.run_all

lock: $(STAMP)
	$(BIN)/uv pip compile --quiet pyproject.toml --extra dev --extra bench --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache rempart-data rempart.db $(OIDC_TOOL)/node_modules
