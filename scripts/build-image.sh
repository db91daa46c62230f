#!/usr/bin/env bash
# Build the multi-arch (linux/amd64 + linux/arm64) mcpfleet image with docker buildx.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/build-image.sh [--print] [--help]

Builds the mcpfleet image for linux/amd64 and linux/arm64 with docker buildx, from the repository root.
The command is printed before it runs; with --print it is only printed.

Environment:
  IMAGE       image name, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/mcpfleet  (default: mcpfleet)
  VERSION     image tag, also the org.opencontainers.image.version label           (default: dev)
  PUSH        1 to push the result to the registry (--push)                         (default: unset)
  SOURCE_URL  org.opencontainers.image.source label                                 (default: the Dockerfile's)

A multi-platform build without --push stays in the buildx cache: use PUSH=1 to publish it, or build one
platform with `docker buildx build --load --platform linux/amd64 ...` to get it into the local image store.
EOF
}

print_only=0
for arg in "$@"; do
  case "$arg" in
    --print) print_only=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "build-image.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."

image="${IMAGE:-mcpfleet}"
version="${VERSION:-dev}"

cmd=(docker buildx build --platform "linux/amd64,linux/arm64"
  -t "${image}:${version}"
  --build-arg "VERSION=${version}")
if [ -n "${SOURCE_URL:-}" ]; then
  cmd+=(--build-arg "SOURCE_URL=${SOURCE_URL}")
fi
if [ "${PUSH:-0}" = "1" ]; then
  cmd+=(--push)
fi
cmd+=(.)

# Print the command so it can be copied as is: plain words bare, anything else shell-quoted.
line=""
for word in "${cmd[@]}"; do
  if [[ "$word" =~ ^[A-Za-z0-9_./:=,@+-]+$ ]]; then
    line+="$word "
  else
    line+="$(printf '%q' "$word") "
  fi
done
echo "${line% }"

if [ "$print_only" = "1" ]; then
  exit 0
fi
if ! command -v docker >/dev/null 2>&1; then
  echo "build-image.sh: docker is not installed (use --print to see the command)" >&2
  exit 1
fi
exec "${cmd[@]}"
