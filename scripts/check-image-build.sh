#!/usr/bin/env bash
# Runs the Dockerfile's two builder steps (placeholder dependency build, then the real binary) in a scratch
# copy of the build context, as `docker build` would, and checks the binary runs. Keep in step with Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/.."
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
export CARGO_TARGET_DIR="$PWD/target/image-check"
# Same commands and manifests as the image build; optimisation is turned down because only the steps are checked.
export CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_DEBUG=false
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16

cp Cargo.toml Cargo.lock "$ctx/"
(
  cd "$ctx"
  mkdir -p src benches
  echo 'fn main() {}' > src/main.rs
  touch src/lib.rs
  echo 'fn main() {}' > benches/plan.rs
  cargo build --quiet --release --locked
  rm -rf src
)
cp -r src "$ctx/src"
(
  cd "$ctx"
  touch src/main.rs src/lib.rs
  cargo build --quiet --release --locked --bin mcpfleet
)
"$CARGO_TARGET_DIR/release/mcpfleet" --version
