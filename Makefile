# obcd: the two commands a fresh machine needs are `make demo` and `make test`.
export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
STACK   ?= stacks/obcms.hcl
ENV     ?= staging
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: build demo test unit e2e e2e-images deps fuzz bench bench-e2e fmt vet clean

build: ## build ./obcd
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o obcd ./cmd/obcd

demo: build ## the main job on the bundled example stack: secrets, then every artifact of staging
	./obcd secrets init $(ENV) --stack $(STACK)
	./obcd render $(ENV) --stack $(STACK)

deps: ## install the Debian packages the tests run against (idempotent)
	bash .ci/deps

test: deps unit ## install what the tests need, run every test against the real tools, then the end-to-end scenario whenever a Docker engine answers
	@if docker version >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory e2e; \
	else \
		echo "make test: NOT RUN: the end-to-end scenario (no Docker engine answers: docker version failed)"; \
	fi

unit: ## every package's tests (one package at a time: they share the Docker engine and two cores)
	$(GO) vet ./...
	$(GO) vet -tags e2e ./cmd/obcd
	$(GO) test -count=1 -p 1 ./...

e2e-images: ## build the end-to-end images from Debian packages (debootstrap; cached by content)
	bash testdata/e2e/images/build.sh

e2e: e2e-images ## the end-to-end scenario on the real engine: deploy, verify, upgrade and break under load, restore, roll back
	$(GO) test -tags e2e -count=1 -v -timeout 45m -run TestE2E ./cmd/obcd

fuzz: ## fuzz the stack loader for a minute
	$(GO) test ./hcl -run '^$$' -fuzz FuzzLoad -fuzztime 60s

bench: ## render benchmarks
	$(GO) test ./templates -run '^$$' -bench . -benchmem

bench-e2e: ## obcd against docker-compose on the e2e stack: deploy times and failed requests (docs/benchmarks.md)
	bash bench/e2e.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf obcd build
