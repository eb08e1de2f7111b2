#!/usr/bin/env bash
# Property-based fuzzing of a live `ppml serve` against docs/openapi.yaml
# with schemathesis (PyPI, pinned, installed into a cached venv under
# ${PPML_CACHE:-$HOME/.cache/ppml}). Checks: no 5xx (not_a_server_error) and
# every answer matches the description (status_code_conformance,
# content_type_conformance, response_schema_conformance). Bounded:
# --max-examples ${PPML_SCHEMATHESIS_EXAMPLES:-25} per operation. Run by
# scripts/test.sh; by hand: scripts/schemathesis.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.32.5
VENV=${PPML_CACHE:-$HOME/.cache/ppml}/schemathesis-$VERSION
if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $VERSION" ]; then
  rm -rf "$VENV.tmp"
  python3 -m venv "$VENV.tmp"
  "$VENV.tmp/bin/pip" install --quiet "schemathesis==$VERSION"
  rm -rf "$VENV" && mv "$VENV.tmp" "$VENV"
  # The venv's scripts name the .tmp path in their shebang: rewrite them.
  sed -i "1s|$VENV.tmp|$VENV|" "$VENV"/bin/*
fi

WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
go build -o "$WORK/ppml" ./cmd/ppml
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$WORK/ppml" serve --data-dir "$WORK/data" --addr "127.0.0.1:$PORT" >"$WORK/serve.log" 2>&1 &
PID=$!
URL=https://127.0.0.1:$PORT
for _ in $(seq 100); do
  [ -f "$WORK/data/tls/ca.crt" ] && curl -fs --cacert "$WORK/data/tls/ca.crt" "$URL/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
export PPML_KMS=$URL PPML_CA_FILE=$WORK/data/tls/ca.crt
app=$("$WORK/ppml" enroll --admin-token-file "$WORK/data/admin.token" --output json)
appid=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["appid"])' <<<"$app")
apikey=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["apikey"])' <<<"$app")
# The app's credentials reach schemathesis through its environment, not argv.
cat >"$WORK/schemathesis.toml" <<'TOML'
[auth]
basic = { username = "${PPML_ST_APPID}", password = "${PPML_ST_APIKEY}" }
TOML
export PPML_ST_APPID=$appid PPML_ST_APIKEY=$apikey

# Run from the work directory: schemathesis writes ./.schemathesis. The
# examples it found are kept in the cache and tried first in the next run.
status=0
SPEC=$PWD/docs/openapi.yaml
(cd "$WORK" && "$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run "$SPEC" --url "$URL" \
  --tls-verify "$WORK/data/tls/ca.crt" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "${PPML_SCHEMATHESIS_EXAMPLES:-25}" --workers 2 --seed 1 --no-color \
  --generation-database "${PPML_CACHE:-$HOME/.cache/ppml}/schemathesis-examples") || status=$?
if [ "$status" != 0 ]; then
  echo "schemathesis found failures; ppml serve's log:" >&2
  tail -50 "$WORK/serve.log" >&2
fi
exit "$status"
