#!/usr/bin/env bash
# Installs what `make test` needs beyond the build tools: sqlx-cli (checks `.sqlx/` against
# the queries), Debian's Chromium (Playwright's own browser download cannot work here), the
# Playwright package, and moto (an S3 stand-in for the media store's test).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }
# The first `sqlx = ` line is the server's dependency (the tests' own comes later).
SQLX_CLI_VERSION=$(sed -n 's/^sqlx = { version = "\([0-9.]*\)".*/\1/p' Cargo.toml | head -n 1)

if [ "$(sqlx --version 2>/dev/null | awk '{print $2}')" != "$SQLX_CLI_VERSION" ]; then
  step "installing sqlx-cli $SQLX_CLI_VERSION for the query check (first time only, ~2 min on 2 cores)"
  cargo install sqlx-cli --version "$SQLX_CLI_VERSION" --no-default-features --features sqlite --locked
fi

if ! command -v chromium >/dev/null 2>&1; then
  step "installing Debian's chromium for the browser tests (~1.5 min)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

if [ ! -d end2end/node_modules/@playwright/test ] || ! cmp -s end2end/package-lock.json end2end/node_modules/.package-lock.json; then
  step "npm ci in end2end/ (@playwright/test; no browser download)"
  (cd end2end && npm ci --no-audit --no-fund --loglevel=error)
fi

# An S3-compatible server for the media store's tests (moto's server mode, from PyPI),
# in a virtual environment of its own under target/.
MOTO_VERSION=5.2.6
if [ "$(target/moto/bin/python -c 'import moto; print(moto.__version__)' 2>/dev/null)" != "$MOTO_VERSION" ]; then
  step "installing moto $MOTO_VERSION (an S3 stand-in for the media tests) in target/moto"
  rm -rf target/moto
  if ! python3 -m venv target/moto 2>/dev/null; then
    # Debian's python3 keeps venv in a package of its own.
    rm -rf target/moto
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv target/moto
  fi
  target/moto/bin/pip install -q "moto[s3,server]==$MOTO_VERSION"
fi

# The scale-out tests (tests/cluster.rs) start nats-server themselves, on free ports, and use
# the machine's PostgreSQL on 127.0.0.1:5432 (MESSENGER_TEST_POSTGRES overrides the address):
# each test makes a database of its own, and one restarts the server with pg_ctlcluster.
apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
if ! command -v nats-server >/dev/null 2>&1; then
  step "installing Debian's nats-server for the scale-out tests"
  apt_install nats-server
fi
if [ -z "${MESSENGER_TEST_POSTGRES:-}" ] && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    step "installing Debian's PostgreSQL for the scale-out tests (trust for local connections)"
    apt_install postgresql
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
      sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
    done
  fi
  step "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
fi
