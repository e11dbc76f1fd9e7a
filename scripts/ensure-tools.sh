#!/usr/bin/env bash
# Installs what building Messenger needs and is missing; checks versions, not just presence.
# Every step says what it does, because a first run on a fresh machine is slow.
set -euo pipefail
cd "$(dirname "$0")/.."
WASM_BINDGEN_VERSION=$(sed -n 's/^wasm-bindgen = .*"=\([0-9.]*\)".*/\1/p' Cargo.toml)
CARGO_LEPTOS_VERSION=0.3.10   # 0.3.11 needs a newer rustc than this machine has
step() { printf '\n==> %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "adding the wasm32-unknown-unknown target (seconds)"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  step "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (first time only, ~4 min on 2 cores)"
  # Not --locked: its lockfile pins a crate version the registry no longer serves.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

if [ ! -x node_modules/.bin/wasm-opt ] || ! cmp -s package-lock.json node_modules/.package-lock.json 2>/dev/null; then
  step "npm ci at the root (binaryen's wasm-opt for release builds; seconds)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# ALTCHA's bot-verification widget, served by this server (no third-party request): its
# CSP-friendly build (no inline styles or workers made from strings), its stylesheet and the
# PBKDF2 worker that public/altcha/setup.js registers.
widget=node_modules/altcha/dist
for f in external/altcha.min.js:altcha.js external/altcha.css:altcha.css workers/pbkdf2.js:pbkdf2.js; do
  from=$widget/${f%%:*}; to=public/altcha/${f##*:}
  if ! cmp -s "$from" "$to" 2>/dev/null; then
    mkdir -p public/altcha && cp "$from" "$to"
  fi
done

# Open Sans (OFL-1.1; by the designer of Segoe UI, with close metrics), Latin, regular and
# semibold, served from /fonts/ for machines without Segoe UI (style/main.css).
for w in 400 600; do
  from=node_modules/@fontsource/open-sans/files/open-sans-latin-$w-normal.woff2
  to=public/fonts/open-sans-latin-$w.woff2
  if ! cmp -s "$from" "$to" 2>/dev/null; then
    mkdir -p public/fonts && cp "$from" "$to"
  fi
done

if [ "${1:-}" = --cargo-leptos ] && [ "$(cargo leptos --version 2>/dev/null | awk '{print $2}')" != "$CARGO_LEPTOS_VERSION" ]; then
  step "installing cargo-leptos $CARGO_LEPTOS_VERSION for 'cargo leptos watch' (first time only, ~30 min on 2 cores)"
  cargo install --locked cargo-leptos --version "$CARGO_LEPTOS_VERSION"
fi
