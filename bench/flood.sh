#!/usr/bin/env bash
# Flood benchmark (issue 13 item 8): `ppml serve` on SQLite; eHSM Decrypt and
# BigDL GET /dataKey with genuine credentials are timed alone, then while 64
# goroutines send BigDL requests with made-up users and tokens and forged
# quotes (the sgx-phala vector with a random FMSPC in its PCK certificate) to
# BigDL AS /verifyQuote. The server's collateral source is a PCCS URL where
# nothing listens: a forged quote must not reach it. Run by hand, not by
# scripts/test.sh. Usage: bench/flood.sh [duration per run, default 10s]
# Extra `ppml serve` flags in SERVE_FLAGS (e.g. "--argon2-limit 2"), extra
# `ppml bench flood` flags in FLOOD_FLAGS (e.g. "--flood tenant-quotes");
# SERVE_BIN runs another ppml binary as the server (e.g. one built before
# the limits, for comparison).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10s}
BIN=$(mktemp -d)/ppml
go build -o "$BIN" ./cmd/ppml
WORK=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK" "$(dirname "$BIN")"; }
trap cleanup EXIT
PORT=${PORT:-19410}
# shellcheck disable=SC2086
"${SERVE_BIN:-$BIN}" serve --data-dir "$WORK/data" --addr 127.0.0.1:$PORT --pccs-url https://127.0.0.1:9 ${SERVE_FLAGS:-} >"$WORK/serve.log" 2>&1 &
for _ in $(seq 100); do [ -f "$WORK/data/tls/server.crt" ] && curl -fsk https://127.0.0.1:$PORT/healthz >/dev/null 2>&1 && break; sleep 0.2; done
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB; go $(go env GOVERSION)"
echo "load before: $(uptime | sed 's/.*load average/load average/')"
"$BIN" bench flood --kms https://127.0.0.1:$PORT --ca-file "$WORK/data/tls/server.crt" \
  --admin-token-file "$WORK/data/admin.token" --duration "$DUR" --quote quote/testdata/dcap/sgx-phala/quote.bin ${FLOOD_FLAGS:-}
echo "load after: $(uptime | sed 's/.*load average/load average/')"
echo "PCCS fetch attempts (audit records naming a PCCS request): $(grep -c "pcs: GET" "$WORK/data/audit.log" || true)"
