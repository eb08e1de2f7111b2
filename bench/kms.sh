#!/usr/bin/env bash
# KMS load benchmark: GenerateDataKeyWithoutPlaintext and Decrypt through the
# eHSM API over HTTPS with keep-alive at concurrency 1, 16 and 64, against
# `ppml serve` on SQLite and on a throwaway PostgreSQL, on this machine.
# Usage: bench/kms.sh [duration per level, default 10s]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10s}
BIN=$(mktemp -d)/ppml
go build -o "$BIN" ./cmd/ppml
source scripts/postgres.sh
WORK=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; stop_postgres; rm -rf "$WORK" "$(dirname "$BIN")"; }
trap cleanup EXIT

run() { # name, port, extra serve flags...
  local name=$1 port=$2; shift 2
  "$BIN" serve --data-dir "$WORK/$name" --addr 127.0.0.1:$port "$@" >"$WORK/$name.log" 2>&1 &
  for _ in $(seq 50); do [ -f "$WORK/$name/tls/server.crt" ] && curl -fsk https://127.0.0.1:$port/healthz >/dev/null 2>&1 && break; sleep 0.2; done
  echo "== store: $name"
  "$BIN" bench kms --kms https://127.0.0.1:$port --ca-file "$WORK/$name/tls/server.crt" \
    --admin-token-file "$WORK/$name/admin.token" --duration "$DUR" --concurrency 1,16,64
  kill %% 2>/dev/null || true
}
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB; go $(go env GOVERSION)"
run sqlite 19400
run postgres 19401 --db "$PPML_TEST_POSTGRES"
