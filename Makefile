# mqttpersist: build, test and the test servers.
#
#   make services       install (if missing) and start the test servers; writes .services/env
#   make services-stop  stop them
#   make test           services + go test -race with the servers required (what CI runs)
#   make bench          services + the Go benchmarks
#   make vet            gofmt check + go vet

SHELL := /bin/bash
GO ?= go
PKGS ?= ./...
# Run a command with the servers' settings from .services/env in its environment.
WITH_ENV := set -a && . .services/env && set +a &&

.PHONY: all services services-stop test bench vet fmt

all: vet test

services:
	@bash scripts/services.sh up

services-stop:
	@bash scripts/services.sh stop

# The recipe's exit code is go test's; nothing is printed after go test's own lines.
# -timeout: the broker packages run many real servers and processes; their
# packages take minutes under -race on two cores, more than go test's 10m
# default when the machine is busy.
test: services
	@$(WITH_ENV) MQTTPERSIST_REQUIRE_SERVERS=1 $(GO) test -race -count=1 -timeout 40m $(PKGS)

bench: services
	@$(WITH_ENV) $(GO) test -run '^$$' -bench . -benchmem $(PKGS)

vet:
	@out="$$(gofmt -l . 2>&1)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@if command -v shellcheck >/dev/null; then shellcheck -x -P SCRIPTDIR scripts/*.sh scripts/services/*.sh .ci/run; fi

fmt:
	gofmt -w .
