# Strata — one command to run it, one to test it. `make help` lists targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

MODULES   := pkg proto deploy/local services/base-a services/base-b services/base-c services/gateway
DATA      ?= .data
BIN       := $(DATA)/bin
TOOLS     := .bin
# Pinned tool versions (the module proxy serves exact versions).
STATICCHECK_VERSION := v0.8.2
# -shuffle=on runs each package's tests in a random order (the seed is
# printed, so a failure reproduces with -shuffle=SEED): no test may depend
# on another having run first.
GO_TEST_FLAGS ?= -race -count=1 -shuffle=on -timeout 15m
export GOFLAGS ?= -buildvcs=false

# Service binaries: every cmd/* directory under services/ that exists.
SERVICE_CMDS := $(wildcard services/*/cmd/*)

# Build tags our own files use (//go:build chaos, abuse, …): lint vets and
# staticchecks those files too. Found by grep so a new suite is never left
# unlinted; vendored third-party code and platform constraints are left out.
LINT_TAGS := $(shell grep -rhoE '^//go:build [a-z0-9_]+$$' --include='*.go' --exclude-dir=third_party $(MODULES) 2>/dev/null \
	| awk '{print $$2}' | grep -vxE 'ignore|unix|linux|darwin|windows|race' | sort -u | paste -sd, -)

# module_pkgs: the packages of module $$m, or an error. A module that lists
# no packages (a typo in MODULES, a broken go.mod, files all behind tags)
# fails the target instead of being skipped silently.
define module_pkgs
pkgs=$$(cd $$m && go list ./...) || { echo "== $$m: go list failed" >&2; exit 1; }; \
	if [ -z "$$pkgs" ]; then echo "== $$m: lists no packages" >&2; exit 1; fi
endef

.PHONY: help
help: ## List targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build the launcher and every service binary into .data/bin
	@mkdir -p $(BIN)
	go build -o $(BIN)/strata-local ./deploy/local/cmd/strata-local
	@for d in $(SERVICE_CMDS); do \
		mod=$${d%/cmd/*}; name=$$(basename $$d); \
		echo "go build -o $(BIN)/$$name ./$$d"; \
		go build -o $(BIN)/$$name ./$$d; \
	done

.PHONY: run
run: build ## Start the whole platform locally (Ctrl-C stops it)
	STRATA_DATA_DIR=$(DATA) STRATA_BIN_DIR=$(BIN) $(BIN)/strata-local run

.PHONY: test
test: build ## Run every test (unit + integration against real PostgreSQL, RabbitMQ, FerretDB)
	STRATA_REQUIRE_INTEGRATION=1 STRATA_E2E_BIN_DIR=$(abspath $(BIN)) $(BIN)/strata-local test-env -- $(MAKE) --no-print-directory test-modules

.PHONY: test-modules
test-modules:
	@for m in $(MODULES); do \
		$(module_pkgs); \
		echo "== go test $$m"; \
		(cd $$m && go test $(GO_TEST_FLAGS) ./...); \
	done

.PHONY: test-unit
test-unit: ## Unit tests only (integration tests skip without the stores)
	@for m in $(MODULES); do $(module_pkgs); (cd $$m && go test -count=1 -shuffle=on ./...); done

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 10s)
	@for m in $(MODULES); do \
		$(module_pkgs); \
		for pkg in $$pkgs; do \
			for f in $$(cd $$m && go test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
				echo "== fuzz $$pkg $$f"; \
				(cd $$m && go test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-10s} $$pkg); \
			done; \
		done; \
	done

.PHONY: chaos
chaos: build ## Fault-injection suite: kills, cuts and stalls every hop, prints a table of figures
	cd deploy/local && STRATA_E2E_BIN_DIR=$(abspath $(BIN)) go test -tags chaos -count=1 -timeout 20m -v ./chaos 2>&1 | \
		grep -E '^(=== RUN|--- |CHAOS|\||PASS|FAIL|ok|panic)|_test.go' ; exit $${PIPESTATUS[0]}

.PHONY: abuse
abuse: build ## Abuse suite: a hostile partner and a well-behaved one share the real stack (~2 min); prints figures
	STRATA_REQUIRE_INTEGRATION=1 STRATA_E2E_BIN_DIR=$(abspath $(BIN)) $(BIN)/strata-local test-env -- \
		bash -c 'cd deploy/local && go test -tags abuse -count=1 -timeout 10m -v ./abuse 2>&1 | grep -E "^(=== RUN|--- |PASS|FAIL|ok|panic)|ABUSE|_test.go"; exit $${PIPESTATUS[0]}'

# Sizes (CPFs seeded) the platform bench measures in turn, in one run.
BENCH_CPFS ?= 10000,100000

.PHONY: bench
bench: build ## Run the benchmarks against real stores (plus a private Redis baseline) in one run (BENCH_CPFS=10000,1000000 for the 1M run)
	@command -v redis-server >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq redis-server >/dev/null; } || \
		{ apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; } || echo "redis-server unavailable: Redis baseline skipped"
	@port=$$(( 20000 + RANDOM % 20000 )); \
	if command -v redis-server >/dev/null; then \
		redis-server --port $$port --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null & rpid=$$!; \
		export STRATA_BENCH_REDIS_ADDR=127.0.0.1:$$port; sleep 0.5; \
	fi; \
	STRATA_BENCH_CPFS=$(BENCH_CPFS) STRATA_E2E_BIN_DIR=$(abspath $(BIN)) $(BIN)/strata-local test-env -- $(MAKE) --no-print-directory bench-modules; rc=$$?; \
	[ -n "$${rpid:-}" ] && kill $$rpid; exit $$rc

.PHONY: soak
soak: build ## 30 minutes at half the maximum read rate: latency, CPU per read, memory, event lag, queues, collection sizes (SOAK=30m)
	STRATA_E2E_BIN_DIR=$(abspath $(BIN)) STRATA_SOAK_DURATION=$(or $(SOAK),30m) $(BIN)/strata-local test-env -- \
		bash -c 'cd deploy/local && go test -run "^$$" -bench BenchmarkSoak -benchtime 1x -count=1 -timeout 2h ./app'

.PHONY: bench-modules
bench-modules:
	@echo "machine: $$(nproc) cores; figures are comparable only within this run"
	@for m in $(MODULES); do \
		$(module_pkgs); \
		(cd $$m && go test -run '^$$' -bench . -benchmem -count=1 -timeout 90m ./... | grep -E '^(Benchmark|FAIL|---|bench: )' || true); \
	done

$(TOOLS)/staticcheck:
	GOBIN=$(abspath $(TOOLS)) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc: proto/tools/go.mod
	cd proto/tools && GOWORK=off go build -o ../../$(TOOLS)/ \
		github.com/bufbuild/buf/cmd/buf \
		google.golang.org/protobuf/cmd/protoc-gen-go \
		google.golang.org/grpc/cmd/protoc-gen-go-grpc

.PHONY: lint
lint: $(TOOLS)/staticcheck ## go vet, staticcheck (also of files behind build tags), gofmt, a GOWORK=off build of every module, size limits
	@for m in $(MODULES); do \
		$(module_pkgs); \
		echo "== lint $$m"; \
		(cd $$m && go vet ./... && $(abspath $(TOOLS))/staticcheck ./... && GOWORK=off go build ./...); \
		tagged=$$(cd $$m && { grep -rlE '^//go:build [a-z0-9_]+$$' --include='*.go' --exclude-dir=third_party . || true; } | xargs -r -n1 dirname | sort -u); \
		if [ -n "$$tagged" ] && [ -n "$(LINT_TAGS)" ]; then \
			echo "== lint $$m -tags $(LINT_TAGS):" $$tagged; \
			(cd $$m && go vet -tags $(LINT_TAGS) $$tagged && $(abspath $(TOOLS))/staticcheck -tags $(LINT_TAGS) $$tagged); \
		fi; \
	done
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@$(MAKE) --no-print-directory sizes

.PHONY: sizes
sizes: ## Size limits: no hand-written Go file over 450 lines, no function over 80, outside tests (.ci/sizecheck; known exceptions in its allow.txt)
	@GOWORK=off go run .ci/sizecheck/main.go -allow .ci/sizecheck/allow.txt $(MODULES)

.PHONY: proto
proto: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc ## Regenerate Go code from the protos
	$(TOOLS)/buf lint
	rm -rf proto/gen/go
	$(TOOLS)/buf generate

.PHONY: proto-check
proto-check: proto ## Lint the protos, regenerate, and fail if generated code changed
	@git add -N proto/gen 2>/dev/null || true
	@if ! git diff --quiet -- proto/gen; then \
		echo "proto/gen is out of date: run 'make proto' and commit the result"; git diff --stat -- proto/gen; exit 1; fi
	@echo "proto-check: generated code is up to date"
	@$(MAKE) --no-print-directory proto-breaking

# buf breaking compares the protos in the working tree with those of a base
# commit of main. The base: the merge-base of HEAD with origin/main (main
# when there is no origin remote); when that is HEAD itself — CI's fresh
# clone with main checked out, or main in a workspace — the base is HEAD's
# first parent, so the commit being checked is compared with the main it
# landed on (comparing main with itself would prove nothing). A repository
# with a single commit has nothing to break. The base's protos are taken
# with git archive (works in worktrees and clones alike; no network).
.PHONY: proto-breaking
proto-breaking: $(TOOLS)/buf ## buf breaking: the protos against main's (see the Makefile for which commit)
	@main=$$(git rev-parse -q --verify origin/main || git rev-parse -q --verify main) || { echo "proto-breaking: no main branch" >&2; exit 1; }; \
	base=$$(git merge-base HEAD $$main); \
	if [ "$$base" = "$$(git rev-parse HEAD)" ]; then \
		base=$$(git rev-parse -q --verify HEAD^) || { echo "proto-breaking: a single commit has nothing to break"; exit 0; }; \
	fi; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	git archive "$$base" buf.yaml proto | tar -x -C "$$tmp"; \
	echo "proto-breaking: buf breaking against $$(git log -1 --format='%h %s' $$base | cut -c1-72)"; \
	$(TOOLS)/buf breaking --against "$$tmp"; \
	echo "proto-breaking: no breaking change"

.PHONY: fmt
fmt: ## Format all Go code
	gofmt -w $(MODULES)

.PHONY: tidy
tidy: ## Sync the workspace's versions into every module, then go mod tidy each
	go work sync
	@for m in $(MODULES); do (cd $$m && GOWORK=off go mod tidy); done

.PHONY: clean
clean: ## Remove build output (keeps .data's databases)
	rm -rf $(BIN) $(TOOLS)
