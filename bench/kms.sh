#!/usr/bin/env bash
# KMS load benchmark: GenerateDataKeyWithoutPlaintext and Decrypt through the
# eHSM API over HTTPS with keep-alive at concurrency 1, 16 and 64, against
# `ppml serve` on SQLite and on a throwaway PostgreSQL, on this machine; then
# the same load (same load generator, `ppml bench kms --vault`) against the
# reference peer, Vault's transit engine in dev mode (in memory, HTTPS), when
# bench/peer.sh can provide it (VAULT_BIN overrides; PEER=none skips), and
# the ratios ppml / Vault. Each table also gives the CPU time per operation
# of the load generator (client-cpu) and of the server process (server-cpu).
# Usage: bench/kms.sh [duration per level, default 10s]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10s}
LEVELS=${LEVELS:-1,16,64}
BIN=$(mktemp -d)/ppml
go build -o "$BIN" ./cmd/ppml
source scripts/postgres.sh
WORK=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; stop_postgres; rm -rf "$WORK" "$(dirname "$BIN")"; }
trap cleanup EXIT

run() { # name, port, extra serve flags...
  local name=$1 port=$2; shift 2
  "$BIN" serve --data-dir "$WORK/$name" --addr 127.0.0.1:$port "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 50); do [ -f "$WORK/$name/tls/server.crt" ] && curl -fsk https://127.0.0.1:$port/healthz >/dev/null 2>&1 && break; sleep 0.2; done
  echo "== store: $name"
  "$BIN" bench kms --kms https://127.0.0.1:$port --ca-file "$WORK/$name/tls/server.crt" \
    --admin-token-file "$WORK/$name/admin.token" --duration "$DUR" --concurrency "$LEVELS" --server-pid $pid | tee "$WORK/$name.out"
  kill %% 2>/dev/null || true
}
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB; go $(go env GOVERSION)"
run sqlite 19400
run postgres 19401 --db "$PPML_TEST_POSTGRES"

[ "${PEER:-vault}" = none ] && exit 0
VAULT_BIN=${VAULT_BIN:-$(bash bench/peer.sh)} || { echo "no reference peer: bench/peer.sh failed (see above)"; exit 0; }
mkdir -p "$WORK/vault-tls"
echo root >"$WORK/vault.token"
"$VAULT_BIN" server -dev -dev-root-token-id=root -dev-listen-address=127.0.0.1:19402 -dev-tls -dev-tls-cert-dir="$WORK/vault-tls" >"$WORK/vault.log" 2>&1 &
vault_pid=$!
for _ in $(seq 100); do [ -f "$WORK/vault-tls/vault-ca.pem" ] && curl -fs --cacert "$WORK/vault-tls/vault-ca.pem" https://127.0.0.1:19402/v1/sys/health >/dev/null 2>&1 && break; sleep 0.2; done
echo "== peer: $("$VAULT_BIN" version) transit, dev mode (in memory)"
"$BIN" bench kms --vault https://127.0.0.1:19402 --vault-token-file "$WORK/vault.token" --ca-file "$WORK/vault-tls/vault-ca.pem" \
  --duration "$DUR" --concurrency "$LEVELS" --server-pid $vault_pid | tee "$WORK/vault.out"
kill %% 2>/dev/null || true

# Ratios: ppml ops/s / Vault ops/s per operation and concurrency.
echo "== ratio ppml / Vault transit dev mode (ops/s)"
printf '%-32s %5s %8s %10s\n' operation conc sqlite postgresql
awk 'FNR == 1 { f++ } $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ { k = $1 " " $2; v[f, k] = $3; if (f == 1) order[++n] = k }
  END { for (i = 1; i <= n; i++) { k = order[i]; split(k, a, " ");
    printf "%-32s %5s %8.2f %10.2f\n", a[1], a[2], v[1, k] / v[3, k], v[2, k] / v[3, k] } }' \
  "$WORK/sqlite.out" "$WORK/postgres.out" "$WORK/vault.out"
