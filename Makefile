# acquit — build, test and demo.
#   make demo   builds everything and runs the demo against the bank simulators
#   make test   runs the whole test suite (starts a throwaway PostgreSQL for the
#               multi-instance tests; installs it with apt-get on a fresh machine)

GO      ?= go
BIN     := bin
GOFLAGS ?=
export GOFLAGS
# Static binaries without libc (nothing in acquit needs cgo: SQLite is
# modernc.org/sqlite, DNS is Go's resolver), and gRPC without its
# golang.org/x/net/trace debug pages: each process maps less code, about
# 2 MB resident less per process at idle (issue 12, docs/benchmarks.md).
CGO        ?= 0
BUILDFLAGS ?= -tags=grpcnotrace

CMDS := \
	$(BIN)/acquit=./cmd/acquit \
	$(BIN)/acquit-demo=./cmd/acquit-demo \
	$(BIN)/acquit-plugin-atos=./plugins/atos/cmd/acquit-plugin-atos \
	$(BIN)/acquit-plugin-ebics=./plugins/ebics/cmd/acquit-plugin-ebics \
	$(BIN)/acquit-plugin-test=./plugins/testplugin/cmd/acquit-plugin-test \
	$(BIN)/acquit-plugin-worldline=./plugins/worldline/cmd/acquit-plugin-worldline \
	$(BIN)/atos-sim=./plugins/atos/sim/cmd/atos-sim \
	$(BIN)/ebics-sim=./plugins/ebics/sim/cmd/ebics-sim \
	$(BIN)/worldline-sim=./plugins/worldline/sim/cmd/worldline-sim

.PHONY: build test test-short bench demo fmt vet generate clean

build:
	@mkdir -p $(BIN)
	@set -e; for pair in $(CMDS); do \
		out=$${pair%%=*}; pkg=$${pair#*=}; \
		if [ -d "$$pkg" ]; then echo "go build $(BUILDFLAGS) -o $$out $$pkg"; CGO_ENABLED=$(CGO) $(GO) build $(BUILDFLAGS) -o $$out $$pkg; fi; \
	done

# The test command of the README and of .ci/run.
test: build
	@bash tools/test.sh

test-short: build
	$(GO) test -short ./...

bench: build
	bash bench/run.sh

demo: build
	$(BIN)/acquit-demo

generate:
	$(GO) generate ./sdk/...

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf $(BIN) .tmp
