# obcd: the two commands a fresh machine needs are `make demo` and `make test`.
export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
STACK   ?= stacks/e2e.hcl
ENV     ?= staging
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: build demo demo-down render test unit e2e e2e-images deps fuzz bench bench-e2e fmt vet clean

build: ## build ./obcd, static (CGO_ENABLED=0): the in-network agent runs this same binary in a FROM-scratch container
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.version=$(VERSION)" -o obcd ./cmd/obcd

demo: build deps e2e-images ## the main job on the bundled stack: secrets, the strict gate, a deploy of staging on this machine's Docker engine, and its proof
	./obcd secrets init $(ENV) --stack $(STACK)
	./obcd validate $(ENV) --strict --stack $(STACK)
	./obcd deploy $(ENV) --yes --stack $(STACK)
	./obcd verify $(ENV) --stack $(STACK)
	@echo "The site is at https://localhost:18443/ (self-signed certificate). make demo-down removes it, keeping its data."

demo-down: build ## remove what make demo started (named volumes are kept; obcd down staging --volumes --yes --stack stacks/e2e.hcl removes them too)
	./obcd down $(ENV) --stack $(STACK)

render: build ## every staging artifact of the full OBCMS example (stacks/obcms.hcl) into build/staging
	./obcd secrets init $(ENV) --stack stacks/obcms.hcl
	./obcd render $(ENV) --stack stacks/obcms.hcl

deps: ## install the Debian packages the tests run against (idempotent)
	bash .ci/deps

test: deps unit fuzz ## install what the tests need, run every test against the real tools, fuzz the loader and the stack generator for a minute each, then the end-to-end scenario whenever a Docker engine answers
	@if docker version >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory e2e; \
	else \
		echo "make test: NOT RUN: the end-to-end scenario (no Docker engine answers: docker version failed)"; \
	fi

unit: ## every package's tests (one package at a time: they share the Docker engine and two cores; the orchestrator's real-engine tests take about 10 minutes, past go test's default timeout)
	$(GO) vet ./...
	$(GO) vet -tags e2e ./cmd/obcd
	$(GO) test -count=1 -p 1 -timeout 30m ./...

e2e-images: ## build the end-to-end images from Debian packages (debootstrap; cached by content)
	bash testdata/e2e/images/build.sh

e2e: e2e-images ## the end-to-end scenario on the real engine: deploy, verify, upgrade and break under load, restore, roll back
	$(GO) test -tags e2e -count=1 -v -timeout 45m -run TestE2E ./cmd/obcd

FUZZTIME ?= 60s

fuzz: ## fuzz the loader with bytes, then load, validate, render and the real tools with generated stacks, FUZZTIME each (60s; a long run: make fuzz FUZZTIME=10m)
	$(GO) test ./hcl -run '^$$' -fuzz FuzzLoad -fuzztime $(FUZZTIME)
	$(GO) test ./internal/stackgen -run '^$$' -fuzz FuzzStack -fuzztime $(FUZZTIME)

bench: ## render benchmarks, and validate and render on big stacks of each shape, up to 10 MB (CPU time and peak memory a run)
	$(GO) test ./templates -run '^$$' -bench . -benchmem
	$(GO) test ./cmd/obcd -run '^$$' -bench BenchmarkCommand_BigStacks -benchtime 3x

bench-e2e: ## obcd against docker-compose on the e2e stack: deploy times and failed requests (docs/benchmarks.md)
	bash bench/e2e.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf obcd build
