#!/usr/bin/env bash
# Scripted benchmarks of the real binary (wall-clock speed of load+validate+plan is `cargo bench --bench plan`).
#   scripts/bench.sh sim [N…]     peak RSS of `plan` and the requests of a no-op apply on the sim (default 10 100 1000)
#   scripts/bench.sh moto [--scale F]
#                                 no-op apply of 100 services and a 50-service tag change against moto, beside
#                                 50 sequential `ecs deploy` runs of PyPI's ecs-deploy (installed in target/bench-venv),
#                                 on moto as is and with moto behind ECS's token buckets (scripts/ecs_throttle_proxy.py;
#                                 `--scale 0.5`: every bucket halved): wall time, requests, throttled requests and
#                                 failed deploys of each tool
#   scripts/bench.sh moto-plan [N [--scale F]]
#                                 `plan` of a converged fleet of N services with one ECR repository each (default 200),
#                                 through the proxy: median wall time of 3, requests, throttled ones, and mcpfleet's
#                                 own wait for tokens by operation (`apiCalls.waitedMs`)
#   scripts/bench.sh scale [N [BIG]]  the CLI on the sim at fleet scale (scripts/bench_scale.py): N services with one
#                                 ECR repository each (default 1000): `apply --wait` creating them, `plan` of the
#                                 converged fleet (and whether the state is left byte-identical), `run` converging
#                                 them; `plan` time and peak RSS of BIG services (default 10000); `status` time
#                                 and peak RSS of the N and the BIG fleet; medians of 3 runs
#   scripts/bench.sh controller   `mcpfleet run` on the sim: RSS over 1000 services, requests per steady-state pass
#                                 for 100, time from a manifest edit to the write
#   scripts/bench.sh bridge       `mcpfleet bridge`: tools/call round trips through it vs the same Python server over
#                                 streamable HTTP (1 and 32 clients), its RSS with 32 per-session sessions
#   scripts/bench.sh size         size of the shipped binary (built as the Dockerfile builds it, stripped by the
#                                 release profile); fails over 25,000,000 bytes
#   scripts/bench.sh              all of the above but scale
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
[ $# -gt 0 ] && shift

# The binary alone, as the Dockerfile builds it: with an example in the same build, cargo would add the
# dev-dependencies' features (the SDKs' test-util) and measure a binary that is not the one shipped.
size_check() {
  local limit=25000000
  cargo build --quiet --release --locked --bin mcpfleet
  local bin=target/release/mcpfleet bytes
  bytes=$(wc -c < "$bin" | tr -d ' ')
  awk -v f="$bin" -v b="$bytes" -v l="$limit" 'BEGIN {
    printf "%s: %d bytes (%.2f MiB, %.2f MB); limit %d bytes, headroom %d bytes (%.2f MiB)\n",
      f, b, b / 1048576, b / 1e6, l, l - b, (l - b) / 1048576 }'
  if [ "$bytes" -gt "$limit" ]; then
    echo "size: the release binary is over the limit of $limit bytes" >&2
    return 1
  fi
}
case "$mode" in
  size) size_check; exit ;;
  all) size_check ;;
esac
cargo build --quiet --release --locked --bin mcpfleet --example fleet_gen --example bridge_bench
bin=$PWD/target/release/mcpfleet
gen=$PWD/target/release/examples/fleet_gen
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -x .venv/bin/python ] || { echo "run scripts/test.sh first (it creates .venv)" >&2; exit 1; }

sim_bench() {
  for n in "${@:-10 100 1000}"; do
    for n in $n; do
      dir="$work/$n"; mkdir -p "$dir/manifests"
      "$gen" "$n" 5 3 > "$dir/manifests/fleet.yaml"
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
print(f"sim N={n:>5}  plan max RSS {rss_mib:6.1f} MiB   no-op apply: {writes} writes, requests {calls}")
PY
    done
  done
}

moto_bench() {
  venv=target/bench-venv
  [ -x "$venv/bin/ecs" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet ecs-deploy==1.17.0; }
  .venv/bin/python scripts/bench_moto.py --mcpfleet "$bin" --fleet-gen "$gen" --ecs-deploy "$PWD/$venv/bin/ecs" \
    --workdir "$work/moto" "$@"
}

moto_plan_bench() {
  local n=200
  if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then n=$1; shift; fi
  .venv/bin/python scripts/bench_moto.py --mcpfleet "$bin" --fleet-gen "$gen" --workdir "$work/moto-plan" \
    --noop-plan "$n" "$@"
}

bridge_bench() {
  target/release/examples/bridge_bench "$bin" "$PWD/.venv/bin/python" 2000
}

scale_bench() {
  python3 scripts/bench_scale.py --mcpfleet "$bin" --fleet-gen "$gen" --workdir "$work/scale" \
    --services "${1:-1000}" --repos "${1:-1000}" --big "${2:-10000}"
}

controller_bench() {
  .venv/bin/python scripts/bench_controller.py --mcpfleet "$bin" --fleet-gen "$gen" --workdir "$work/controller"
}

case "$mode" in
  sim) sim_bench "$@" ;;
  moto) moto_bench "$@" ;;
  moto-plan) moto_plan_bench "$@" ;;
  scale) scale_bench "$@" ;;
  controller) controller_bench ;;
  bridge) bridge_bench ;;
  all) sim_bench; moto_bench; moto_plan_bench; controller_bench; bridge_bench ;;
  *) echo "usage: scripts/bench.sh [size | sim [N…] | scale [N [BIG]] | moto [--scale F] | moto-plan [N [--scale F]] | controller | bridge]" >&2; exit 2 ;;
esac
