#!/usr/bin/env bash
# The quickstart: the example fleet in manifests/ deployed end to end on the embedded sim backend (a simulated
# ECS, ECR and Secrets Manager kept in .mcpfleet/sim.json), no AWS account needed.
#   1. seed the simulator with the fleet's images (one x86_64-only) and secrets,
#   2. plan, then apply --wait (digests pinned, architectures chosen, secret ARNs wired, rollouts watched),
#   3. show status, and a second plan that finds nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --release --locked
state=.mcpfleet/quickstart.json
rm -f "$state"
mcpfleet() { target/release/mcpfleet --backend sim --sim-state "$state" "$@"; }
ecr=123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp

echo "==> seeding the simulator ($state)"
mcpfleet sim push "$ecr/documents:v1.4.2"                           # multi-arch: auto picks arm64
mcpfleet sim push "$ecr/database:v2.0.1" --platform linux/amd64     # x86_64 only
mcpfleet sim push "$ecr/search:v0.9.0"
for secret in prod/mcp/openai-key prod/mcp/db-password prod/mcp/search-api-key; do
  mcpfleet sim secret "$secret"
done

echo; echo "==> mcpfleet plan -f manifests/"
mcpfleet plan -f manifests/
echo; echo "==> mcpfleet apply -f manifests/ --wait"
mcpfleet apply -f manifests/ --wait
echo; echo "==> mcpfleet status -f manifests/"
mcpfleet status -f manifests/
echo; echo "==> mcpfleet plan -f manifests/ --detailed-exitcode   (converged: exit 0, nothing to do)"
mcpfleet plan -f manifests/ --detailed-exitcode
