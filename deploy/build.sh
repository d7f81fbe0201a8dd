#!/bin/sh
# Builds herald as one static binary: what the Docker image ships, and what
# the deploy tests build and run. Usage: deploy/build.sh OUTPUT
# VERSION and COMMIT, if set, are stamped into `herald version`.
set -eu
out="${1:?usage: deploy/build.sh OUTPUT}"
cd "$(dirname "$0")/.."
CGO_ENABLED=0 go build -trimpath -buildvcs=false \
  -ldflags "-s -w -X main.version=${VERSION:-dev} -X main.commit=${COMMIT:-}" \
  -o "$out" ./cmd/herald
