#!/usr/bin/env bash
# The project's test command: starts what the tests need (a throwaway
# PostgreSQL, the Kubernetes test binaries), then runs every Go test.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/postgres.sh
trap stop_postgres EXIT

if [ -x hack/k8sbins/build.sh ]; then
  KUBEBUILDER_ASSETS=$(hack/k8sbins/build.sh)
  export KUBEBUILDER_ASSETS
fi

go vet ./...
go test -count=1 -timeout 60m "$@" ./...
