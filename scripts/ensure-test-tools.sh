#!/usr/bin/env bash
# Installs what `make test` needs beyond the build tools: Debian's Chromium (Playwright's own
# browser download cannot work here) and the Playwright package.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }

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
