# Messenger. `make run` builds and serves it; `make test` checks everything. See README.md.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

# Builds live outside the clone so a fresh clone (CI) reuses them; override to taste.
# Cargo judges freshness by file times, and two checkouts of this project share the cache's
# fingerprints: after building another checkout, `touch` this one's sources (a fresh clone's
# files are always newer) or its build may come from the other's sources.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/messenger-target
# Compiled into the server: the page loads /pkg/messenger.wasm, as under cargo-leptos.
export LEPTOS_OUTPUT_NAME := messenger
# A backtrace on every missing tool buries the one line that matters.
unexport RUST_BACKTRACE

.PHONY: run release build tools test-tools test fmt-check clippy sqlx-check sqlx-prepare rust-tests e2e dev bench bench-peers screenshots clean help

help:
	@echo "make run    build (release) and serve Messenger on http://127.0.0.1:3000"
	@echo "make test   fmt, clippy (ssr + hydrate), Rust unit/integration/crash tests, Playwright"
	@echo "make dev    cargo leptos watch (installs cargo-leptos 0.3.10 once: ~30 min)"
	@echo "make sqlx-prepare  rewrite .sqlx/ after changing a query or a migration"
	@echo "make bench  release build + load generator scenarios (docs/BENCHMARKS.md)"
	@echo "make bench-peers  the same scenarios against socket.io, ws and Bun (3 repeats)"
	@echo "make screenshots  retake docs/screenshots/ (debug build, Playwright)"

run: release
	@echo "==> serving Messenger on http://127.0.0.1:3000 (database: ./data/messenger.db; Ctrl-C stops)"
	./target/messenger

release: tools
	@echo "==> release build (the first one compiles every dependency: ~10 min on 2 cores)"
	scripts/build-site.sh release

build: tools
	scripts/build-site.sh debug

tools:
	@scripts/ensure-tools.sh

test-tools: tools
	@scripts/ensure-test-tools.sh

test: test-tools fmt-check sqlx-check clippy rust-tests e2e
	@echo "==> all checks passed"

fmt-check:
	@echo "==> cargo fmt --check"
	cargo fmt --all -- --check

# sqlx checks every query at compile time against `.sqlx/`; these two describe the queries
# afresh against a database built from migrations/ (SQLite, in target/).
SQLX_DB := $(CURDIR)/target/sqlx-prepare.db
SQLX_FEATURES := --features ssr,test-support --all-targets

sqlx-check:
	@echo "==> .sqlx/ describes every query as the code and migrations have them (cargo sqlx prepare --check)"
	@mkdir -p target && rm -f $(SQLX_DB)*
	DATABASE_URL=sqlite:$(SQLX_DB) sqlx database setup >/dev/null
	DATABASE_URL=sqlite:$(SQLX_DB) SQLX_OFFLINE=false cargo sqlx prepare --check -- $(SQLX_FEATURES)

sqlx-prepare: test-tools
	@echo "==> rewriting .sqlx/ from the queries and migrations/"
	@mkdir -p target && rm -f $(SQLX_DB)*
	DATABASE_URL=sqlite:$(SQLX_DB) sqlx database setup >/dev/null
	DATABASE_URL=sqlite:$(SQLX_DB) SQLX_OFFLINE=false cargo sqlx prepare -- $(SQLX_FEATURES)

clippy:
	@echo "==> clippy: server (ssr) with tests, load tool, islands (hydrate), client-side build (csr)"
	cargo clippy --features ssr,test-support --all-targets -- -D warnings
	cargo clippy --features loadgen --bin loadgen -- -D warnings
	cargo clippy --lib --target wasm32-unknown-unknown --features hydrate -- -D warnings
	cargo clippy --bin messenger-csr --target wasm32-unknown-unknown --features csr -- -D warnings

# The test databases earlier runs left on the machine's PostgreSQL (a test that fails keeps
# its own for inspection until the next run).
TEST_POSTGRES ?= $(or $(MESSENGER_TEST_POSTGRES),postgres://postgres@127.0.0.1:5432/postgres)

rust-tests:
	@echo "==> Rust tests: unit, integration (real server, real sockets), the SIGKILL crash test, and several nodes on PostgreSQL and NATS"
	cargo test --features ssr,test-support
	@echo "==> the API suite again, against PostgreSQL (docs/SCALING.md)"
	psql "$(TEST_POSTGRES)" -Atqc "SELECT format('DROP DATABASE %I WITH (FORCE);', datname) FROM pg_database WHERE datname LIKE 'messenger\_api\_%' OR datname LIKE 'messenger\_test\_%'" | psql "$(TEST_POSTGRES)" -q
	MESSENGER_TEST_STORE=postgres cargo test --features ssr,test-support --test api

e2e: build
	@echo "==> Playwright in Debian's Chromium"
	cd end2end && npx playwright test

# The load tool builds in its own target directory: built with the server's lib under other
# features, cargo would rebuild the one in turn after the other (~4 min each time).
LOADGEN_TARGET := $(CARGO_TARGET_DIR)/loadgen

bench: release test-tools
	@echo "==> building the load generator (release)"
	CARGO_TARGET_DIR=$(LOADGEN_TARGET) cargo build --release --bin loadgen --features loadgen
	LOADGEN=$(LOADGEN_TARGET)/release/loadgen scripts/bench.sh

bench-peers: release
	@echo "==> building the load generator (release) and installing the peers (npm ci in benches/peers)"
	CARGO_TARGET_DIR=$(LOADGEN_TARGET) cargo build --release --bin loadgen --features loadgen
	cd benches/peers && npm ci --no-audit --no-fund --loglevel=error
	LOADGEN=$(LOADGEN_TARGET)/release/loadgen scripts/bench-peers.sh

# The screenshots in docs/screenshots/ (the debug build, then a Playwright script).
screenshots: build test-tools
	cd end2end && npx playwright test --config shots.config.ts

dev:
	@scripts/ensure-tools.sh --cargo-leptos
	cargo leptos watch

clean:
	rm -rf target/site target/messenger
