# Skiff build. Every target runs on a fresh Debian 12 machine after `make deps`.

# sudo resets PATH; find the Go toolchain where a fresh machine has it.
GO        ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
# Scripts run by make (the e2e script may build kubectl) see the same Go.
export PATH := $(dir $(GO)):$(PATH)
BIN       ?= bin/skiff
PKGS      ?= ./...
# Build tags. nomsgpack leaves gin's MessagePack codec (ugorji) out of the
# binary: Skiff never speaks MessagePack, and its code is ~6 MB of text the
# server would map (a resident-memory target counts those pages).
TAGS      ?= nomsgpack
# Go test timeout for the whole suite; privileged tests need root.
TEST_TIMEOUT ?= 25m
FUZZTIME  ?= 45s

APT_PACKAGES = clang llvm libbpf-dev bpftool iproute2 iptables nftables \
	containerd runc iperf3 netcat-openbsd iputils-ping linux-libc-dev make git

.PHONY: all deps build generate verify-generated test test-go test-e2e fuzz lint bench clean

all: build

## deps: install what a fresh Debian 12 machine lacks (needs root and apt).
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "deps: all present"; fi
	$(GO) mod download

## build: the skiff binary.
build:
	$(GO) build -tags $(TAGS) -o $(BIN) ./tools/skiff

## generate: run go:generate (bpf2go) in every package that has it.
generate:
	$(GO) generate ./...

## verify-generated: fail when regenerating changes committed output.
verify-generated: generate
	@git diff --exit-code --stat -- '*.go' '*.o' || \
		(echo "generated files are stale: run 'make generate' and commit the result" >&2; exit 1)

## test: unit, BPF, network namespace and integration tests, the bounded
## fuzz run and the kubectl end-to-end script. Privileged parts need root;
## with SKIFF_PRIVILEGED_TESTS=1 a missing privilege fails instead of skipping.
test: test-go fuzz test-e2e

test-go:
	$(GO) test -tags $(TAGS) -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

fuzz:
	$(GO) test -tags $(TAGS) -run='^$$' -fuzz='^FuzzDecodeDefaultValidate$$' -fuzztime=$(FUZZTIME) ./controlplane/registry/fuzz

test-e2e: build
	SKIFF=$(CURDIR)/$(BIN) test/e2e/run.sh

## openapi: regenerate the embedded OpenAPI documents from the k8s.io/kubernetes
## module matching go.mod's k8s.io/api (downloads it; not part of generate).
.PHONY: openapi
openapi:
	$(GO) run ./controlplane/apiserver/openapi/gen -out controlplane/apiserver/openapi/data

## lint: go vet and a gofmt check.
lint:
	$(GO) vet -tags $(TAGS) $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: every benchmark (needs root for the load balancer one).
bench: build
	$(BIN) bench api --json bench-api.json
	$(BIN) bench lb --json bench-lb.json
	$(BIN) bench scheduler --json bench-scheduler.json

clean:
	rm -rf bin bench-*.json
