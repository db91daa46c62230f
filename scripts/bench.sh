#!/usr/bin/env bash
# Scripted benchmark of the real binary on the sim backend: peak memory (max RSS) of `plan` over a converged
# fleet, and the API requests a no-op apply makes, for N services. Wall-clock speed of load+validate+plan is
# `cargo bench --bench plan` (criterion). Usage: scripts/bench.sh [N...]   (default: 10 100 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release --locked --bin mcpfleet --example fleet_gen
bin=$PWD/target/release/mcpfleet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for n in "${@:-10 100 1000}"; do
  for n in $n; do
    dir="$work/$n"; mkdir -p "$dir/manifests"
    target/release/examples/fleet_gen "$n" 5 3 > "$dir/manifests/fleet.yaml"
    sim() { "$bin" --backend sim --sim-state "$dir/sim.json" "$@"; }
    for r in 0 1 2 3 4; do sim sim push "123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/repo-$r:v1" > /dev/null; done
    for s in 0 1 2; do sim sim secret "bench/secret-$s" > /dev/null; done
    sim apply -f "$dir/manifests" > /dev/null 2>&1
    python3 - "$bin" "$dir" "$n" <<'PY'
import json, resource, subprocess, sys
bin, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = [bin, "--backend", "sim", "--sim-state", f"{d}/sim.json"]
subprocess.run(base + ["plan", "-f", f"{d}/manifests", "-o", "json"], check=True, capture_output=True)
rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
out = subprocess.run(base + ["apply", "-f", f"{d}/manifests", "-o", "json"], check=True, capture_output=True).stdout
calls = json.loads(out)["apiCalls"]["calls"]
writes = sum(v for k, v in calls.items() if k in ("RegisterTaskDefinition", "DeregisterTaskDefinition", "CreateService", "UpdateService", "DeleteService", "TagResource"))
print(f"N={n:>5}  plan max RSS {rss_mib:6.1f} MiB   no-op apply: {writes} writes, requests {calls}")
PY
  done
done
