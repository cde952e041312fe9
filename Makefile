# pfa-sync — the two set-up commands are `make run` and `make test`; both install what is
# missing (and only that) on a fresh Debian machine, then do their job.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.SHELLFLAGS := -eu -o pipefail -c

CARGO_LEPTOS_VERSION := 0.3.6
BINARYEN_VERSION     := 132.0.0
# The wasm-bindgen CLI must match the library version that Cargo.lock pins.
WASM_BINDGEN_VERSION := $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/^version = "\(.*\)"/\1/p;}' Cargo.lock)

export CARGO_TARGET_DIR ?= $(CURDIR)/target
export PATH := $(HOME)/.cargo/bin:$(PATH)
# cargo-leptos writes the site (pkg/ bundle, CSS, public assets) here.
SITE_ROOT := $(CURDIR)/target/site
# The release site, precompressed (site-release), in a folder of its own: a debug build in the
# same folder would leave the release's compressed copies beside its own files, and the server
# would send them.
RELEASE_SITE_ROOT := $(CURDIR)/target/site-release

.PHONY: help run run-cluster run-release test test-rust test-e2e test-e2e-debug test-e2e-release bench bench-quick baseline \
        site-release tools wasm-target cargo-leptos wasm-bindgen wasm-opt chromium zopfli postgres e2e-deps fmt fmt-check lint

help: ## Show this list
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

run: tools ## Serve the app on http://localhost:3000 (dev mode: SQLite, PEMS simulator, demo data)
	PFA_SYNC_MODE=dev cargo leptos serve --split

# Two instances on one throwaway PostgreSQL (scripts/run-cluster.sh; docs/deploy.md).
run-cluster: tools postgres ## Two instances (ports 3000 and 3001) on a throwaway PostgreSQL with the PEMS simulator, dev mode
	cargo leptos build --split
	bash scripts/run-cluster.sh "$(CARGO_TARGET_DIR)/debug/pfa-sync" "$(SITE_ROOT)"

run-release: site-release ## Same as run, with the optimised release build
	PFA_SYNC_MODE=dev LEPTOS_SITE_ROOT="$(RELEASE_SITE_ROOT)" "$(CARGO_TARGET_DIR)/release/pfa-sync"

# The release build with every static asset precompressed: cargo-leptos writes `file.br`
# (brotli at quality 11) and `file.gz` beside each file, and the server sends the copy that the
# client accepts instead of compressing on each request. Every current browser accepts brotli
# (a fifth smaller than the server's own brotli for the main wasm module). cargo-leptos writes
# its gzip copies at a fast level (larger than compressing on the fly), so zopfli rewrites them
# (4 % smaller than gzip -9) for clients without brotli.
site-release: tools
	LEPTOS_SITE_ROOT="$(RELEASE_SITE_ROOT)" cargo leptos build --release --split --precompress
	find "$(RELEASE_SITE_ROOT)" -name '*.gz' -print0 | while IFS= read -r -d '' gz; do zopfli -c "$${gz%.gz}" > "$$gz"; done

test: fmt-check lint tools postgres e2e-deps test-rust bench-quick test-e2e ## Run every test: style (rustfmt, clippy), Rust unit and black-box tests, the benchmark harness in quick mode, then Playwright (debug and release)

# The black-box tests run twice: on SQLite files, then on databases of a throwaway PostgreSQL
# (tests/common); the store's unit tests and tests/cluster.rs use PostgreSQL in both runs.
test-rust: postgres ## Rust unit tests and the black-box tests in tests/ (on SQLite, then on a throwaway PostgreSQL)
	cargo test --features ssr --locked
	PFA_SYNC_TEST_STORE=postgres cargo test --features ssr --locked --test '*'

test-e2e: test-e2e-debug test-e2e-release ## Playwright against the debug and the release build

test-e2e-debug: tools e2e-deps
	cargo leptos build --split
	cd end2end && E2E_BUILD=debug E2E_BIN="$(CARGO_TARGET_DIR)/debug/pfa-sync" E2E_SITE_ROOT="$(SITE_ROOT)" npx playwright test

test-e2e-release: site-release e2e-deps
	cd end2end && E2E_BUILD=release E2E_BIN="$(CARGO_TARGET_DIR)/release/pfa-sync" E2E_SITE_ROOT="$(RELEASE_SITE_ROOT)" npx playwright test

# Benchmarks run the release server and the PEMS simulator on loopback, driven by pfa-loadgen
# (src/bin/pfa-loadgen); 10,000 sockets on each side need a raised open-file limit. Both run
# under `nice` so that other work on the machine (Playwright) keeps its share.
# The `cluster` group runs two instances on a throwaway PostgreSQL (Debian's server binaries,
# which `make postgres` installs when missing); no configured database server is used.
# `make bench BASELINE=<git ref>` also runs the single-instance fan-out rows against that ref's
# server, built in release in a git worktree (`make baseline`), and prints them beside the
# current ones (docs/benchmarks.md, "Baseline").
BENCH_ARGS ?=
BASELINE ?=
BASELINE_DIR = $(CURDIR)/target/baseline-$(subst /,-,$(BASELINE))
BASELINE_BIN = $(BASELINE_DIR)/target/release/pfa-sync
bench: site-release postgres $(if $(BASELINE),baseline) ## Benchmarks: print the table and write it into docs/benchmarks.md (about 15 minutes; BASELINE=<git ref> adds that ref's fan-out rows)
	cargo build --release --locked --features ssr --bin pfa-sync --bin pfa-loadgen
	ulimit -n "$$(ulimit -Hn)" && nice -n 5 "$(CARGO_TARGET_DIR)/release/pfa-loadgen" \
	  --site-root "$(RELEASE_SITE_ROOT)" --write docs/benchmarks.md \
	  $(if $(BASELINE),--baseline-bin "$(BASELINE_BIN)" --baseline-label "$(BASELINE)") $(BENCH_ARGS)

bench-quick: postgres ## The benchmark harness at small sizes (debug build, no targets; fails if an event is lost)
	cargo build --locked --features ssr --bin pfa-sync --bin pfa-loadgen
	ulimit -n "$$(ulimit -Hn)" && nice -n 5 "$(CARGO_TARGET_DIR)/debug/pfa-loadgen" --quick --site-root "$(SITE_ROOT)"

# The worktree is checked out at the ref's commit on every call (a branch name moves); its
# build has a target folder of its own, so it never disturbs this tree's.
baseline: ## Build BASELINE's (a git ref) pfa-sync in release, in a worktree at target/baseline-<ref>
	@test -n "$(BASELINE)" || { echo "set BASELINE=<git ref>, e.g. make baseline BASELINE=1032ddc"; exit 1; }
	@commit="$$(git rev-parse --verify --quiet '$(BASELINE)^{commit}')" || \
	  { echo "BASELINE=$(BASELINE) is not a commit of this repository"; exit 1; }; \
	if [ -e "$(BASELINE_DIR)/.git" ]; then git -C "$(BASELINE_DIR)" checkout --quiet --detach "$$commit"; \
	else git worktree prune && git worktree add --detach "$(BASELINE_DIR)" "$$commit"; fi
	cd "$(BASELINE_DIR)" && CARGO_TARGET_DIR="$(BASELINE_DIR)/target" \
	  cargo build --release --features ssr --bin pfa-sync --locked

fmt: ## Format the code
	cargo fmt

fmt-check: ## Fail if the code is not formatted
	cargo fmt --check

lint: wasm-target ## Clippy on the server and the browser build, warnings as errors
	cargo clippy --features ssr --all-targets -- -D warnings
	cargo clippy --lib --target wasm32-unknown-unknown --features hydrate -- -D warnings

tools: wasm-target cargo-leptos wasm-bindgen wasm-opt chromium zopfli ## Install the build tools that are missing

wasm-target:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

cargo-leptos:
	@cargo leptos --version 2>/dev/null | grep -q ' $(CARGO_LEPTOS_VERSION)$$' || \
	  { echo "installing cargo-leptos $(CARGO_LEPTOS_VERSION) (about 16 minutes on 2 cores, once)"; \
	    cargo install cargo-leptos --locked --version $(CARGO_LEPTOS_VERSION); }

wasm-bindgen:
	@test -n "$(WASM_BINDGEN_VERSION)" || { echo "no wasm-bindgen in Cargo.lock"; exit 1; }
	@wasm-bindgen --version 2>/dev/null | grep -q ' $(WASM_BINDGEN_VERSION)$$' || \
	  { echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION)"; \
	    cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --force; }

# Debian's binaryen 108 produces release bundles that fail to hydrate; npm's binaryen 132 works.
wasm-opt:
	@wasm-opt --version 2>/dev/null | grep -q 'version $(firstword $(subst ., ,$(BINARYEN_VERSION)))' || \
	  { echo "installing wasm-opt from npm binaryen@$(BINARYEN_VERSION)"; \
	    npm install --global --no-fund --no-audit binaryen@$(BINARYEN_VERSION); }

# $(call apt-install,<package>,<who needs it>): installs a Debian package with apt when run as
# root; otherwise says which command to run, and fails.
apt-install = if [ "$$(id -u)" = 0 ]; then echo "installing Debian's $(1)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null; \
	  else echo "$(2) needs Debian's $(1): run 'sudo apt-get install $(1)'"; exit 1; fi

chromium:
	@test -x /usr/bin/chromium || { $(call apt-install,chromium,Playwright (at /usr/bin/chromium)); }

zopfli:
	@command -v zopfli >/dev/null || { $(call apt-install,zopfli,The release site); }

# The throwaway PostgreSQL clusters of the tests and `make run-cluster` run Debian's server
# binaries, which it keeps off PATH (src/server/store/throwaway.rs).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { $(call apt-install,postgresql,The throwaway PostgreSQL of the tests); }

e2e-deps: end2end/node_modules/.installed

end2end/node_modules/.installed: end2end/package.json end2end/package-lock.json
	cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-fund --no-audit --loglevel=error
	touch $@
