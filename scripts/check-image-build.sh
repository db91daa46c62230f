#!/usr/bin/env bash
# Runs the Dockerfile's two builder steps (placeholder dependency build, then the real binary) in a scratch
# copy of the build context, as `docker build` would, and checks the binary runs and is statically linked (it is
# also the bridge that stdio MCP servers run behind, in images of any libc). Keep in step with Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/.."
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
export CARGO_TARGET_DIR="$PWD/target/image-check"
# Same commands, flags and manifests as the image build (the host's own target, as the Dockerfile builds for the
# build platform's); optimisation is turned down because only the steps and the linking are checked.
target=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-C target-feature=+crt-static"
export CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_DEBUG=false
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
# Cargo.toml's per-package opt-levels (cold crates built for size) would otherwise still apply; a profile in
# cargo's configuration takes precedence over the manifest's.
opt0=()
for pkg in $(sed -n '/^\[profile\.release\.package\]/,/^\[/s/^\([A-Za-z0-9_-]*\)\.opt-level.*/\1/p' Cargo.toml); do
  opt0+=(--config "profile.release.package.$pkg.opt-level=0")
done

cp Cargo.toml Cargo.lock "$ctx/"
(
  cd "$ctx"
  mkdir -p src benches
  echo 'fn main() {}' > src/main.rs
  touch src/lib.rs
  echo 'fn main() {}' > benches/plan.rs
  cargo build --quiet --release --locked --target "$target" "${opt0[@]}"
  rm -rf src
)
cp -r src "$ctx/src"
(
  cd "$ctx"
  touch src/main.rs src/lib.rs
  cargo build --quiet --release --locked --target "$target" --bin mcpfleet "${opt0[@]}"
)
bin="$CARGO_TARGET_DIR/$target/release/mcpfleet"
"$bin" --version
# Static: `file` says so and `ldd` finds no libraries to load.
kind=$(file -b "$bin")
case "$kind" in
  *"statically linked"* | *"static-pie linked"*) ;;
  *) echo "error: $bin is not statically linked: $kind" >&2; exit 1 ;;
esac
libs=$(ldd "$bin" 2>&1 || true)
case "$libs" in
  *"not a dynamic executable"* | *"statically linked"*) ;;
  *) echo "error: $bin loads shared libraries:" >&2; echo "$libs" >&2; exit 1 ;;
esac
echo "$bin: $kind"
