#!/usr/bin/env bash
# The full test suite, from a fresh clone: installs the test tools into .venv (git-ignored) and the distribution
# registry (apt, when missing), then runs the formatting and lint gates, every Rust test, and hadolint on the
# Dockerfile. Exit 0 only when all pass.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
stamp="$venv/.requirements.sha256"
want=$(sha256sum requirements-test.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing test tools into $venv (requirements-test.txt)"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
  echo "$want" > "$stamp"
fi
export MCPFLEET_TEST_PYTHON="$PWD/$venv/bin/python"

# The CNCF distribution registry, which the registry tests start on loopback ports (tests/common/registry.rs).
if ! command -v docker-registry >/dev/null 2>&1; then
  echo "==> installing the distribution registry (Debian package docker-registry)"
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry
  fi
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "==> hadolint Dockerfile, and the Dockerfile's cargo build steps"
"$venv/bin/hadolint" Dockerfile
scripts/check-image-build.sh
echo "==> cargo test"
cargo test --all-targets --locked
