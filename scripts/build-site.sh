#!/usr/bin/env bash
# Builds Messenger exactly as cargo-leptos would lay it out, without needing cargo-leptos
# (whose install takes ~30 min on 2 cores): the server binary, the islands' WASM bundle with
# wasm-bindgen (and wasm-opt in release), the stylesheet and public assets, under target/site.
# Values come from [package.metadata.leptos] in Cargo.toml, so `cargo leptos` and this script
# produce the same site.
#   usage: scripts/build-site.sh [debug|release]
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-debug}

meta() { # key -> value from [package.metadata.leptos]
  awk -v key="$1" '
    /^\[package\.metadata\.leptos\]/ { in_section = 1; next }
    /^\[/ { in_section = 0 }
    in_section && $1 == key { sub(/^[^=]*=[ \t]*"?/, ""); sub(/"?[ \t]*$/, ""); print; exit }
  ' Cargo.toml
}
name=$(meta output-name)
site=$(meta site-root)
pkg="$site/$(meta site-pkg-dir)"
style=$(meta style-file)
assets=$(meta assets-dir)
wasm_profile=$(meta lib-profile-release)
target_dir=${CARGO_TARGET_DIR:-target}
# Compiled into the server so the page asks for `$name.wasm`, as under cargo-leptos.
export LEPTOS_OUTPUT_NAME="$name"

if [ "$mode" = release ]; then
  server_flags=(--release); wasm_flags=(--profile "$wasm_profile"); wasm_dir=$wasm_profile
else
  server_flags=(); wasm_flags=(); wasm_dir=debug
fi

echo "==> building the islands' WASM bundle ($mode)"
cargo build --lib --target wasm32-unknown-unknown --no-default-features --features hydrate "${wasm_flags[@]}"
echo "==> building the server ($mode)"
cargo build --bin messenger --no-default-features --features ssr "${server_flags[@]}"

echo "==> assembling $site"
mkdir -p "$pkg"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
wasm-bindgen --target web --no-typescript --out-dir "$tmp" --out-name "$name" \
  "$target_dir/wasm32-unknown-unknown/$wasm_dir/${name//-/_}.wasm"
if [ "$mode" = release ]; then
  echo "==> optimising the WASM bundle with wasm-opt"
  PATH="$PWD/node_modules/.bin:$PATH" wasm-opt -Oz --converge --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types \
    "$tmp/${name}_bg.wasm" -o "$tmp/${name}_bg.wasm"
fi
mv "$tmp/${name}_bg.wasm" "$pkg/$name.wasm"
mv "$tmp/$name.js" "$pkg/$name.js"
cp "$style" "$pkg/$name.css"
rm -f "$pkg"/*.br "$pkg"/*.gz
echo "==> precompressing the bundle (the server sends these as they are)"
node scripts/precompress.mjs "$pkg" "$mode"
cp -r "$assets"/. "$site"/
mkdir -p target
cp "$target_dir/$( [ "$mode" = release ] && echo release || echo debug )/messenger" target/messenger.new
mv -f target/messenger.new target/messenger  # replacing, not overwriting, a running binary
echo "==> built: target/messenger and $site ($(du -sh "$pkg/$name.wasm" | cut -f1) of WASM)"
