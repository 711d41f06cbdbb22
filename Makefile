# OpenTrain — the two commands: `make demo` and `make test`. Setup is idempotent: stamps make the
# second run fast, and change when pyproject.toml or package-lock.json change.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
NPM := npm exec --yes --package=node@22 --
HARDHAT := npx hardhat
STAMPS := .stamps

.PHONY: setup demo test test-contracts test-python contracts check-artifacts lint slither chain bench soak faults clean

setup: $(STAMPS)/python $(STAMPS)/node $(STAMPS)/system

$(STAMPS)/system:
	@mkdir -p $(STAMPS)
	# Debian's Chromium for tests/test_dashboard_browser.py (never a downloaded browser)
	command -v chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }
	@touch $@

$(STAMPS)/python: pyproject.toml
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: a bare requirement could pull a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

$(STAMPS)/node: package.json package-lock.json
	@mkdir -p $(STAMPS)
	# npm must itself run on Node 22, or it skips Hardhat's native EDR package
	$(NPM) npm ci --no-audit --no-fund
	@touch $@

contracts: $(STAMPS)/node $(STAMPS)/python
	$(HARDHAT) build
	$(BIN)/python scripts/export_artifacts.py

check-artifacts: $(STAMPS)/node $(STAMPS)/python
	$(HARDHAT) build
	$(BIN)/python scripts/export_artifacts.py --check

test-contracts: $(STAMPS)/node
	$(HARDHAT) test

# Everything, the short fault run included (tests/faults: six scenarios across network
# namespaces, about 7 minutes; skipped with the reason where namespaces cannot be created)
test-python: $(STAMPS)/python
	$(BIN)/python -m pytest -q

# The short fault run: the market across network namespaces under injected faults.
faults: setup
	$(BIN)/python -m pytest -q -m faults tests/faults

test: setup check-artifacts test-contracts test-python

demo: setup
	$(BIN)/opentrain demo

SLITHER_VENV := .venv-slither
$(STAMPS)/slither:
	@mkdir -p $(STAMPS)
	# slither-analyzer pins web3 < 8: it gets its own venv
	test -x $(SLITHER_VENV)/bin/slither || ($(PY) -m venv $(SLITHER_VENV) && $(SLITHER_VENV)/bin/pip install -q slither-analyzer==0.11.6)
	@touch $@

slither: $(STAMPS)/node $(STAMPS)/slither
	# Hardhat 3 keeps stale build-info files that crytic-compile cannot read: clean first
	$(HARDHAT) clean
	$(HARDHAT) build
	$(SLITHER_VENV)/bin/slither . --hardhat-ignore-compile --filter-paths "node_modules|contracts/test" --fail-medium

lint: setup slither
	$(BIN)/ruff check opentrain node verifier marketplace_api tests bench scripts
	$(BIN)/mypy opentrain node verifier marketplace_api
	$(BIN)/lint-imports

chain: $(STAMPS)/node
	$(HARDHAT) node --hostname 127.0.0.1 --port 8545

# The fault tests (tests/faults) for SOAK_SECONDS: jobs back to back under random faults, then
# a summary (jobs, faults injected, settled contributions, violations). `make faults` runs them short.
SOAK_SECONDS ?= 1800
soak: setup
	OPENTRAIN_SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/python -m pytest -q -s -m faults tests/faults

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(STAMPS) artifacts cache .opentrain test-artifacts
