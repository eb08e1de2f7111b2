#!/usr/bin/env bash
# The project's test command: starts what the tests need (a throwaway
# PostgreSQL, the Kubernetes test binaries), then runs every Go test.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/postgres.sh

# Every go test run goes through internal/testsummary (go test -json in,
# plain go test output out) and the summary closes the script, also on
# failure: packages, passed/failed/skipped (skipped by name), fuzz
# executions, and the bar of 0 skipped: a skip fails the run unless the
# test says why it cannot run here ("EXCLUDED (...)"), which is listed.
SUMMARY_DIR=$(mktemp -d)
go build -o "$SUMMARY_DIR/testsummary" ./internal/testsummary
summary() {
  local rc=$?
  stop_postgres
  if declare -F interop_summary >/dev/null; then interop_summary; rm -f "$PPML_ENGINES"; fi
  if [ -s "$SUMMARY_DIR/state" ]; then
    "$SUMMARY_DIR/testsummary" -state "$SUMMARY_DIR/state" -report || rc=1
  fi
  rm -rf "$SUMMARY_DIR"
  exit $rc
}
trap summary EXIT
gotest() { # gotest LABEL ARGS...: go test -json ARGS through the summary
  local label=$1; shift
  go test -json "$@" | "$SUMMARY_DIR/testsummary" -state "$SUMMARY_DIR/state" -label "$label"
}

# etcd, kube-apiserver, kube-controller-manager and kubectl for the cluster
# tests (built from the Go proxy's Kubernetes modules, cached).
KUBEBUILDER_ASSETS=$(hack/k8sbins/build.sh)
export KUBEBUILDER_ASSETS

# Prometheus and promtool for the monitoring tests (Debian's package; the
# system service is not started: the tests run their own Prometheus).
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
  else
    sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
  fi
fi
# keytool and openssl check the generated key stores and password files.
if ! command -v keytool >/dev/null || ! command -v openssl >/dev/null; then
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends default-jdk-headless openssl
fi

# The real engines of the interop tests (./interop): Spark, parquet-mr,
# Java 11, and BigDL PPML's classes compiled from its source. Cached.
# Their NAME=VALUE lines go to a file the interop tests read (PPML_ENGINES),
# not into this environment: JAVA_HOME and SPARK_HOME would reach every test.
PPML_ENGINES=$(mktemp)
scripts/engines.sh > "$PPML_ENGINES"
export PPML_ENGINES
engine() { sed -n "s/^$1=//p" "$PPML_ENGINES"; }
interop_summary() {
  echo "== interop with real engines (docs/compatibility.md): Spark $(engine SPARK_HOME), parquet-mr $(engine PARQUET_JARS), Java $(engine JAVA_HOME)"
  echo "BigDL PPML $(engine BIGDL_PPML_TAG) (commit $(engine BIGDL_PPML_COMMIT)) with the dllib files it needs and BigDL-core $(engine BIGDL_CORE_COMMIT)'s Java wrappers, compiled from the upstream source (no release is served): kms.EHSMKeyManagementService, kms.BigDLKeyManagementService, attestation.service.EHSMAttestationService, attestation.service.BigDLAttestationService run against ppml serve; crypto.BigDLEncrypt and kms.common.KeyLoader (.meta; eHSM KMS and plain-text primary key) against ppml encrypt/decrypt --format bigdl, BigDLAESCBCEncrypt against ppml decrypt --format bigdl-nativeaescbc; the SimpleQuerySparkExample query through PPMLContext, EncryptedDataFrameReader/Writer and CryptoCodec in spark-submit, over a dataset ppml encrypted, its output read by ppml decrypt (interop/bigdl_test.go)"
  echo "EXCLUDED: BigDL PPML $(engine BIGDL_PPML_EXCLUDED)"
  echo "KNOWN GAP: BigDL $(engine BIGDL_PPML_TAG)'s EHSMAttestationService.attestWithServer(quote) without a policy id passes only result 0xA000, not SGX_QL_QV_RESULT_OK (0) that ppml and eHSM answer (docs/compatibility.md)"
  echo "KNOWN GAP: in Kubernetes cluster mode Spark copies spark.bigdl.primaryKey.<name>.kms.apiKey into the driver ConfigMap (docs/compatibility.md)"
}
# (interop_summary is printed by summary(), the one EXIT trap, before the
# test counts.)

PROMETHEUS=$(command -v prometheus)
PROMTOOL=$(command -v promtool)
export PROMETHEUS PROMTOOL

go vet ./...
# The container image builds ppml static (CGO_ENABLED=0, no DuckDB): keep that working.
CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' -o /dev/null ./cmd/ppml   # the flags of k8s/image.BuildFlags: warms the cache for its test
gotest tests -count=1 -timeout 20m "$@" ./...

# Property-based fuzzing of a live ppml serve against docs/openapi.yaml
# (schemathesis from PyPI, cached venv; no 5xx, answers match the description).
scripts/schemathesis.sh

# The concurrent service code once more under the race detector.
gotest race -race -count=1 -timeout 20m ./server/ ./agent/... ./quote/policy/ ./attestation/... ./kms/... ./quote/verify/ ./store/... ./internal/boundedcache/

# A short fuzzing run of every parser of untrusted input (their seed corpora
# already ran above as ordinary tests). The budget is a number of executions,
# not a duration: Go 1.26's fuzz coordinator can report a spurious "context
# deadline exceeded" when a duration expires under load (golang/go#75804).
while read -r pkg target; do
  gotest fuzz -run '^$' -fuzz "^${target}\$" -fuzztime "${PPML_FUZZTIME:-50000x}" "./$pkg"
done <<'FUZZ'
quote/abi FuzzParseQuote
quote/pck FuzzParseExtension
quote/collateral FuzzParseCollateral
quote/collateral FuzzParseTCBInfo
quote/verify FuzzVerify
FUZZ
