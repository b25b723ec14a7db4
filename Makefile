# obcd: the two commands a fresh machine needs are `make demo` and `make test`.
export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
STACK   ?= stacks/obcms.hcl
ENV     ?= staging
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: build demo test deps fuzz bench fmt vet clean

build: ## build ./obcd
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o obcd ./cmd/obcd

demo: build ## the main job on the bundled example stack: secrets, then every artifact of staging
	./obcd secrets init $(ENV) --stack $(STACK)
	./obcd render $(ENV) --stack $(STACK)

deps: ## install the Debian packages the tests run against (idempotent)
	bash .ci/deps

test: deps ## install what the tests need, then run every test against the real tools (one package at a time: they share the Docker engine and two cores)
	$(GO) vet ./...
	$(GO) test -count=1 -p 1 ./...

fuzz: ## fuzz the stack loader for a minute
	$(GO) test ./hcl -run '^$$' -fuzz FuzzLoad -fuzztime 60s

bench: ## render benchmarks
	$(GO) test ./templates -run '^$$' -bench . -benchmem

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf obcd build
