#!/usr/bin/env bash
# The quickstart: builds mcpfleet and runs it on the example fleet in manifests/ with no AWS account.
# Today that means validating the fleet and rendering what ECS and Docker Compose would receive; the sim backend
# (apply, status and rollback against an embedded ECS simulator) extends this script when it lands.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --release --locked
bin=target/release/mcpfleet
out=.mcpfleet
mkdir -p "$out"

echo "==> mcpfleet validate -f manifests/"
"$bin" validate -f manifests/
echo
echo "==> mcpfleet render --format ecs -f manifests/  (written to $out/ecs.json)"
"$bin" render --format ecs -f manifests/ > "$out/ecs.json"
python3 - "$out/ecs.json" <<'PY'
import json, sys
for s in json.load(open(sys.argv[1]))["services"]:
    td = s["registerTaskDefinition"]
    c = td["containerDefinitions"][0]
    arch = td["runtimePlatform"].get("cpuArchitecture", "auto")
    secrets = ",".join(x["name"] for x in c.get("secrets", [])) or "-"
    print("  %-10s cpu=%-5s memory=%-5s arch=%-7s stopTimeout=%ss secrets=%s" % (s["name"], td["cpu"], td["memory"], arch, c["stopTimeout"], secrets))
PY
echo
echo "==> mcpfleet render --format compose -f manifests/  (written to $out/docker-compose.yml)"
"$bin" render --format compose -f manifests/ > "$out/docker-compose.yml"
grep -E '^  [a-z]+:$|127\.0\.0\.1' "$out/docker-compose.yml"
