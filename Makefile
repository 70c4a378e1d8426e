# roomd build / install / test entry points. Every target first runs
# scripts/deps.sh, which installs whatever is missing (apt packages, rustup
# target + components, arm64 sysroot) and is silent and sub-second otherwise.
#
#   make build     native debug build of the workspace
#   make cross     release build for aarch64 -> target/aarch64-unknown-linux-gnu/release/{roomd,roomd-sim}
#   make test      fmt check, clippy -D warnings, native tests, security checks (secret scan of
#                  every log, cargo deny), aarch64 tests under qemu, the booted aarch64 system test
#                  (what CI runs)
#   make test-native / make test-cross / make test-system   parts of `make test`
#                  (test-system: the booted aarch64 guest under qemu-system-aarch64)
#   make run       native build, then scripts/run-local.sh (roomd-sim + roomd; Ctrl-C stops both)
#   make bench     every benchmark (SRP and media engine also for aarch64 under qemu);
#                  writes docs/benchmarks.md (figures as ratios against in-run baselines)
#   make soak      fault soak: roomd against roomd-sim, 1,000 seeded faults + 200 kill -9
#                  restarts, bookings equality, panics, peak RSS, reconnect schedule (≤ 20 min)
#   make fuzz      every fuzz target for FUZZ_TIME seconds (default 60), FUZZ_JOBS at once
#                  (default 1); non-zero exit on any crash (scripts/fuzz.sh)
#   make fmt | clippy | clean | clean-cache | deps | help
#
# Variables (all overridable: `make test JOBS=4`, or from the environment):
#   JOBS              cargo -j (default 2: the CI machines have 2 cores)
#   ROOMD_CACHE_DIR   cache root, default ~/.cache/roomd (sysroot, GStreamer registry, target dir)
#   CARGO_TARGET_DIR  default $(ROOMD_CACHE_DIR)/target, shared by every clone on the
#                     machine so a fresh clone reuses compiled dependencies; ./target
#                     is made a symlink to it. A real ./target directory is used as is.
#   ROOMD_TARGET_MAX_MB  the shared target dir is wiped when it grows past this (default 40000: native debug + aarch64 debug and release fill about 28 GB)
#   CARGO_TERM_COLOR  default auto (never when CI is set)
#   CARGO_INCREMENTAL default 0 when CI is set (incremental state only grows the cache)

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

CARGO ?= cargo
JOBS ?= 2
CROSS_TARGET := aarch64-unknown-linux-gnu

ROOMD_CACHE_DIR ?= $(HOME)/.cache/roomd
export ROOMD_CACHE_DIR
ROOMD_TARGET_MAX_MB ?= 40000
export ROOMD_TARGET_MAX_MB

ifeq ($(origin CARGO_TARGET_DIR),undefined)
  ifeq ($(shell [ -d target ] && [ ! -L target ] && echo real),real)
    CARGO_TARGET_DIR := $(CURDIR)/target
  else
    CARGO_TARGET_DIR := $(ROOMD_CACHE_DIR)/target
  endif
endif
export CARGO_TARGET_DIR

ifneq ($(CI),)
  export CARGO_TERM_COLOR ?= never
  export CARGO_INCREMENTAL ?= 0
else
  export CARGO_TERM_COLOR ?= auto
endif
export CARGO JOBS

# Same environment for every cargo call (it only touches aarch64 settings, so
# native fingerprints are identical with or without it).
CARGO_ENV := . scripts/cross-env.sh &&

.PHONY: all build cross test test-native test-cross test-system run bench fuzz soak fmt clippy clean clean-cache \
        deps deps-native target-link help

all: build

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

deps:
	@scripts/deps.sh

# Enough for native builds, fmt and clippy (no sysroot needed).
deps-native:
	@scripts/deps.sh host rust

# ./target -> $(CARGO_TARGET_DIR), size cap, and rebuild of the workspace
# crates when another checkout used the shared dir last: see the script.
target-link:
	@scripts/target-dir.sh

build: deps-native target-link
	@$(CARGO_ENV) $(CARGO) build --workspace -j $(JOBS)

cross: deps target-link
	@$(CARGO_ENV) $(CARGO) build --release --workspace --target $(CROSS_TARGET) -j $(JOBS)
	@ls -l target/$(CROSS_TARGET)/release/roomd target/$(CROSS_TARGET)/release/roomd-sim 2>/dev/null | \
	    awk '{print "built: " $$NF " (" $$5 " bytes)"}'

test: deps target-link
	@scripts/test.sh

test-native: deps-native target-link
	@scripts/test.sh fmt clippy native

test-cross: deps target-link
	@scripts/test.sh cross

test-system: deps target-link
	@scripts/test.sh system

run: deps-native target-link
	@$(CARGO_ENV) $(CARGO) build --workspace -j $(JOBS)
	@if [ ! -x scripts/run-local.sh ]; then echo "scripts/run-local.sh missing or not executable" >&2; exit 1; fi
	exec scripts/run-local.sh

# Every benchmark (natively, and SRP + media engine for aarch64 under qemu); writes
# docs/benchmarks.md with the figures as ratios against their in-run baselines.
bench: deps target-link
	@scripts/bench.sh

# Every fuzz target for FUZZ_TIME seconds each (default 60), FUZZ_JOBS at once.
FUZZ_TIME ?= 60
FUZZ_JOBS ?= 1
fuzz: deps-native
	@scripts/fuzz.sh --time $(FUZZ_TIME) --jobs $(FUZZ_JOBS)

# The fault soak (tests/soak): 1,000 seeded faults, then 200 kill -9 restarts; a report at the end.
# SOAK_SEED, SOAK_FAULTS, SOAK_KILLS override the defaults (1, 1000, 200).
SOAK_SEED ?= 1
SOAK_FAULTS ?= 1000
SOAK_KILLS ?= 200
soak: deps-native target-link
	@scripts/deps.sh soak
	@ROOMD_SOAK_SEED=$(SOAK_SEED) ROOMD_SOAK_FAULTS=$(SOAK_FAULTS) ROOMD_SOAK_KILLS=$(SOAK_KILLS) \
	    $(CARGO_ENV) $(CARGO) test --release --test soak -j $(JOBS)

fmt: deps-native
	@$(CARGO) fmt --all

clippy: deps-native target-link
	@$(CARGO_ENV) $(CARGO) clippy --workspace --all-targets -j $(JOBS) -- -D warnings

# Removes the (shared) cargo target dir; the sysroot stays.
clean:
	@$(CARGO) clean
	@if [ -L target ] && [ ! -e target ]; then rm -f target; fi

# Everything under ROOMD_CACHE_DIR: sysroot, arm64 GStreamer registry, target dir.
clean-cache: clean
	rm -rf "$(ROOMD_CACHE_DIR)"
	@rm -f target 2>/dev/null || true
