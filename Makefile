# kentledge — the README's two commands are `make demo` and `make test`.
CARGO ?= cargo
SHELL := /bin/bash

.PHONY: all build demo test lint unit install-test-deps completions bench image cluster agents clean

all: build

build:
	$(CARGO) build --workspace

## Install what the tests need (idempotent; fast when already installed).
install-test-deps:
	scripts/install-test-deps.sh

## The whole suite: install, format, lints, every test.
test: install-test-deps lint unit

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

## The main job on the embedded default (see scripts/demo.sh for what it does today).
demo: install-test-deps
	scripts/demo.sh

## Regenerate completions/ from the CLI definition.
completions:
	UPDATE_COMPLETIONS=1 $(CARGO) test -p kentledge --lib committed_completions_are_current

## A local test cluster in the foreground (kubeconfig in target/cluster/kubeconfig; Ctrl-C stops it).
cluster:
	$(CARGO) run -q -p kentledge-nodeagents --bin kentledge-cluster

## Only the node agents, against another API server (see tests/agents/README.md):
## make agents KUBECONFIG=... AGENT_ARGS="--client-ca-file CA [--node-ip IP] ..." 
agents:
	$(CARGO) run -q -p kentledge-nodeagents --bin kentledge-node -- $(AGENT_ARGS)

## Speed goals, measured (never asserted): retention planning, then the measures that need the
## local cluster (release build; each prints: measure, kentledge, reference, ratio, goal; on
## copy-on-write storage where the machine allows it: see scripts/bench.sh).
bench: install-test-deps
	$(CARGO) bench -p kentledge --bench retention
	CARGO=$(CARGO) scripts/bench.sh

## The image as an OCI archive (target/image/kentledge-<version>.oci.tar): Debian packages by
## mmdebstrap and the release binary, no container engine needed (see scripts/image.sh).
image:
	scripts/image.sh

clean:
	$(CARGO) clean
