#!/usr/bin/env bash
# The full test suite, from a fresh clone: installs the test tools (git-ignored: .venv, .venv-mcp1 and
# scripts/npm/node_modules) and the distribution registry (apt, when missing), then runs the formatting and lint
# gates, every Rust test, and hadolint on the Dockerfile. Exit 0 only when all pass.
set -euo pipefail
cd "$(dirname "$0")/.."

# ensure_venv DIR REQUIREMENTS: (re)creates the venv DIR from REQUIREMENTS when it is missing or they changed.
ensure_venv() {
  local venv=$1 requirements=$2
  local stamp="$venv/.requirements.sha256" want
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> installing test tools into $venv ($requirements)"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" > "$stamp"
  fi
}

ensure_venv .venv requirements-test.txt
export MCPFLEET_TEST_PYTHON="$PWD/.venv/bin/python"

# The probe tests also run servers of the MCP SDK's 1.x generation, which cannot share .venv with mcp 2.x.
ensure_venv .venv-mcp1 requirements-mcp1.txt
export MCPFLEET_TEST_PYTHON_MCP1="$PWD/.venv-mcp1/bin/python"

# ... and the reference MCP server users know, @modelcontextprotocol/server-everything, from the npm registry at
# the version scripts/npm/package-lock.json pins (into scripts/npm/node_modules, git-ignored).
npm_stamp=scripts/npm/node_modules/.lock.sha256
npm_want=$(sha256sum scripts/npm/package-lock.json | cut -d' ' -f1)
if [ ! -d scripts/npm/node_modules ] || [ "$(cat "$npm_stamp" 2>/dev/null)" != "$npm_want" ]; then
  echo "==> installing the reference MCP server into scripts/npm (package-lock.json)"
  npm ci --prefix scripts/npm --no-audit --no-fund --loglevel=error
  echo "$npm_want" > "$npm_stamp"
fi
export MCPFLEET_TEST_NODE_MODULES="$PWD/scripts/npm/node_modules"

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
.venv/bin/hadolint Dockerfile
scripts/check-image-build.sh
echo "==> cargo test"
cargo test --all-targets --locked
