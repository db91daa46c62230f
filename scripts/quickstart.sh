#!/usr/bin/env bash
# The quickstart: the example fleet in manifests/ deployed end to end on the embedded sim backend (a simulated
# ECS, ECR, Secrets Manager and ELB kept in .mcpfleet/quickstart.json), no AWS account needed.
#   1. seed the simulator with the fleet's images (one x86_64-only), secrets, and the load balancer's target group
#      that documents is exposed through (your IaC makes it on AWS),
#   2. plan, then apply --wait (digests pinned, architectures chosen, secret ARNs and the target group wired,
#      rollouts watched),
#   3. show status (each service's endpoint: documents' load balancer, Service Connect for the others), and a
#      second plan that finds nothing to do.
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
mcpfleet sim target-group mcp-documents --health-path /ready      # probes documents' readiness.path

echo; echo "==> mcpfleet plan -f manifests/"
mcpfleet plan -f manifests/
echo; echo "==> mcpfleet apply -f manifests/ --wait"
mcpfleet apply -f manifests/ --wait
echo; echo "==> mcpfleet status -f manifests/"
mcpfleet status -f manifests/
echo; echo "==> mcpfleet plan -f manifests/ --detailed-exitcode   (converged: exit 0, nothing to do)"
mcpfleet plan -f manifests/ --detailed-exitcode
