# easgate: make test is the one command that checks everything.

GO ?= go
export PATH := $(PATH):/usr/local/go/bin

.PHONY: all build test fuzz bench

all: build

## build: compile every package and the easgate binary into bin/
build:
	$(GO) build ./...
	$(GO) build -o bin/easgate ./cmd/easgate

## test: install missing Debian packages (as root), gofmt check, go vet, go test -race
test:
	./scripts/test.sh

## fuzz: run every fuzz target (wbxml and others) for FUZZTIME each (default 30s); FUZZ_PKGS=./wbxml/... to narrow
fuzz:
	./scripts/fuzz.sh $(FUZZ_PKGS)

## bench: run all benchmarks once with allocation counts
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...
