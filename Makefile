# LAN speech-to-text: entry points. `make help` lists them.
#
# Everything a fresh machine needs is installed by these targets: a Python venv from the
# committed uv.lock, torch once per machine (reused by every checkout), the Go gateway, the
# frontend, and an embedded PostgreSQL cluster under ./.data when DATABASE_URL is unset.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON        ?= python3
LANASR_CACHE  ?= $(HOME)/.cache/lanasr
UV_VERSION    := 0.13.9
UV            := $(LANASR_CACHE)/uv-$(UV_VERSION)/bin/uv
TORCH_VERSION := 2.15.0
PYTAG         := $(shell $(PYTHON) -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
TORCH_DIR     ?= $(LANASR_CACHE)/torch-$(TORCH_VERSION)-$(PYTAG)
VENV          := $(CURDIR)/.venv
VPY           := $(VENV)/bin/python
GATEWAY_BIN   := $(CURDIR)/bin/asr-gateway
WSCLIENT_BIN  := $(CURDIR)/bin/asr-wsclient
SQLC_VERSION  := v1.30.0
GO_SOURCES    := $(shell find gateway-go migrations -name '*.go' -o -name '*.sql' -o -name 'go.mod' -o -name 'go.sum' 2>/dev/null)
UI_SOURCES    := $(shell find frontend -path frontend/node_modules -prune -o -type f -print 2>/dev/null)
UV_SYNC_ARGS  := --project worker-py --frozen --extra offline --extra funasr --extra smb --group dev

export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON := $(shell command -v $(PYTHON))
export ASR_GATEWAY_BIN := $(GATEWAY_BIN)

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# ---------------------------------------------------------------------------------------------
# Set-up

$(UV):
	@echo ">> installing uv $(UV_VERSION) into $(LANASR_CACHE) (once per machine)"
	@mkdir -p $(LANASR_CACHE)
	$(PYTHON) -m venv $(LANASR_CACHE)/uv-$(UV_VERSION)
	$(LANASR_CACHE)/uv-$(UV_VERSION)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(TORCH_DIR)/.complete:
	@echo ">> installing torch $(TORCH_VERSION) once per machine into $(TORCH_DIR) (about 5 GB; later checkouts reuse it)"
	@rm -rf $(TORCH_DIR) && mkdir -p $(TORCH_DIR)
	$(PYTHON) -m pip install --disable-pip-version-check --progress-bar on --target $(TORCH_DIR) torch==$(TORCH_VERSION)
	@touch $@

.PHONY: torch
torch: $(TORCH_DIR)/.complete ## Install torch once per machine (shared by every checkout)

$(VENV)/.synced: worker-py/pyproject.toml worker-py/uv.lock $(UV) | $(TORCH_DIR)/.complete
	@echo ">> syncing the Python environment .venv from worker-py/uv.lock"
	$(UV) sync $(UV_SYNC_ARGS)
	@site=$$($(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	  echo "$(TORCH_DIR)" > $$site/lanasr-torch.pth
	@touch $@

.PHONY: venv
venv: $(VENV)/.synced ## Python venv (worker, tests, tools) from the lock file

$(GATEWAY_BIN): $(GO_SOURCES) $(wildcard gateway-go/ui/dist/index.html)
	@echo ">> building the gateway"
	cd gateway-go && go build -trimpath -o $(GATEWAY_BIN) ./cmd/asr-gateway

$(WSCLIENT_BIN): $(GO_SOURCES)
	cd gateway-go && go build -trimpath -o $(WSCLIENT_BIN) ./cmd/asr-wsclient

.PHONY: gateway
gateway: $(GATEWAY_BIN) $(WSCLIENT_BIN) ## Build the Go gateway (bin/asr-gateway) and its FunASR-protocol client (bin/asr-wsclient)

frontend/node_modules/.package-lock.json: frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error

gateway-go/ui/dist/index.html: frontend/node_modules/.package-lock.json $(UI_SOURCES)
	@echo ">> building the frontend"
	cd frontend && npm run --silent build

.PHONY: frontend
frontend: gateway-go/ui/dist/index.html ## Build the web UI into the gateway's embed directory

.PHONY: build
build: venv frontend ## Everything make run needs
	@$(MAKE) --no-print-directory gateway

# ---------------------------------------------------------------------------------------------
# Running

.PHONY: run
run: build ## Start PostgreSQL (embedded unless DATABASE_URL is set), gateway and one worker
	@$(VPY) scripts/devstack.py run

.PHONY: worker
worker: venv ## Start one more worker against the running stack
	@$(VPY) scripts/devstack.py worker

.PHONY: db-url
db-url: ## Print the database URL of the running stack
	@if [ -n "$$DATABASE_URL" ]; then echo "$$DATABASE_URL"; else cat .data/db-url 2>/dev/null || { echo "no stack here yet: run make run" >&2; exit 1; }; fi

.PHONY: credentials
credentials: venv ## Database login for a LAN machine or person: make credentials ROLE=worker|gateway|reader NAME=laptop-anna [HOST=192.168.1.10]
	@test -n "$(ROLE)" -a -n "$(NAME)" || { echo "usage: make credentials ROLE=worker|gateway|reader NAME=laptop-anna [HOST=addr]" >&2; exit 1; }
	@$(VPY) scripts/lan_credentials.py create --role "$(ROLE)" --name "$(NAME)" $(if $(HOST),--host "$(HOST)")

.PHONY: migrate
migrate: gateway ## Apply migrations to DATABASE_URL (or the running stack's database)
	@DATABASE_URL="$${DATABASE_URL:-$$(cat .data/db-url)}" $(GATEWAY_BIN) migrate

# ---------------------------------------------------------------------------------------------
# Tests and checks

.PHONY: test
test: build samba ## Every test suite, against a throwaway PostgreSQL cluster
	@$(VPY) scripts/testdb.py -- $(MAKE) --no-print-directory generate-check test-go test-fuzz test-py test-frontend test-e2e test-browser

.PHONY: test-go
test-go: gateway ## Go tests (needs ASR_TEST_DATABASE_URL; make test provides it)
	cd gateway-go && go vet ./... && go test -count=1 ./...

FUZZTIME ?= 10s
FUZZ_TARGETS := FuzzLiveConfig:. FuzzLiveFrames:./http FuzzLiveSocket:./http FuzzUpload:./http FuzzSniff:./audiocheck

.PHONY: test-fuzz
test-fuzz: ## Run each Go fuzz target for FUZZTIME (10s in make test)
	@cd gateway-go && for t in $(FUZZ_TARGETS); do \
	  echo ">> fuzz $${t%%:*} ($(FUZZTIME))"; \
	  go test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s "$${t#*:}" || exit 1; \
	done

.PHONY: fuzz
LONG_FUZZTIME ?= 5m
fuzz: ## The fuzzers for longer (LONG_FUZZTIME=5m each by default)
	@$(MAKE) --no-print-directory test-fuzz FUZZTIME=$(LONG_FUZZTIME)

.PHONY: test-py
test-py: venv gateway samba ## Python unit, integration and acceptance tests
	$(VENV)/bin/pytest -q worker-py/tests

.PHONY: test-frontend
test-frontend: frontend ## Frontend unit tests
	cd frontend && npm test --silent

.PHONY: test-e2e
test-e2e: build samba ## End-to-end tests over the real processes (tests/test_lan.py: root, network namespaces, smbd)
	$(VENV)/bin/pytest -q tests --ignore=tests/browser

.PHONY: chromium
chromium: ## Debian's Chromium and CJK fonts for the browser tests (apt-get; needs root)
	@scripts/ensure-chromium.sh

.PHONY: samba
samba: ## Samba's smbd for the SMB storage and multi-host tests (apt-get; needs root)
	@scripts/ensure-samba.sh

.PHONY: test-browser
test-browser: build chromium ## Browser tests: Chromium with a fake microphone against the real stack
	$(VENV)/bin/pytest -q tests/browser

.PHONY: screenshots
screenshots: build chromium ## Refresh docs/screenshots from the browser tests
	@$(VPY) scripts/testdb.py -- env UPDATE_SCREENSHOTS=1 $(VENV)/bin/pytest -q tests/browser

.PHONY: generate
generate: ## Regenerate sqlc code from gateway-go/postgres/*.sql
	cd gateway-go && go run github.com/sqlc-dev/sqlc/cmd/sqlc@$(SQLC_VERSION) generate

.PHONY: generate-check
generate-check: ## Fail if generated code drifted from the .sql files
	cd gateway-go && go run github.com/sqlc-dev/sqlc/cmd/sqlc@$(SQLC_VERSION) diff

.PHONY: bench
bench: build ## Benchmarks: submit latency, dispatch latency, pipeline overhead (prints a table)
	@$(VPY) scripts/testdb.py -- $(VPY) tests/bench/bench.py

.PHONY: soak
soak: build ## Bounded load (~5 min): 100 uploads + 8 live sessions at once, per round; prints a table
	@$(VPY) scripts/testdb.py -- $(VPY) tests/bench/soak.py

.PHONY: clean
clean: ## Remove build output (keeps .data and the per-machine caches)
	rm -rf bin gateway-go/ui/dist/assets gateway-go/ui/dist/index.html frontend/node_modules $(VENV)
