#!/usr/bin/env bash
# Mutation testing of the security-critical code. Not part of CI (slow);
# docs/testing.md records the last run's scores and the reasons for the
# surviving mutants that were kept.
#
#   scripts/mutation.sh                 # gremlins over every package below, then the named mutations
#   scripts/mutation.sh gremlins PKG... # gremlins only, over these packages
#   scripts/mutation.sh named           # the named mutations only
#
# Part 1 runs go-gremlins (from the Go module proxy, pinned below) over each
# package with its own tests, bounded by PPML_MUTATION_BUDGET seconds per
# package (default 900; a package cut off by the budget is scored on the
# mutants it finished), one worker, and prints killed/lived/score per
# package. Logs go to ${PPML_MUTATION_OUT:-/tmp/ppml-mutation}.
#
# Part 2 applies each named mutation (a disabled signature, MAC, CRL, TCB,
# tenancy, nonce or release check, a wrong signing key) to a scratch copy of
# HEAD and requires the named tests to fail: a mutation that survives is a
# check no test holds in place. It needs PostgreSQL (scripts/postgres.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

GREMLINS_VERSION=v0.6.0
BIN=${PPML_CACHE:-$HOME/.cache/ppml}/bin
OUT=${PPML_MUTATION_OUT:-/tmp/ppml-mutation}
BUDGET=${PPML_MUTATION_BUDGET:-900}
PACKAGES=(dataformat/stream dataformat/bigdl wire/ehsmsig quote/abi quote/verify attestation kms kms/rootkey)
mkdir -p "$OUT" "$BIN"

gremlins_part() {
  # Some packages' tests (kms/secrets, under ./kms/...) use PostgreSQL.
  source "$ROOT/scripts/postgres.sh"
  trap 'stop_postgres' RETURN
  if [ ! -x "$BIN/gremlins-$GREMLINS_VERSION" ]; then
    GOBIN=$BIN go install "github.com/go-gremlins/gremlins/cmd/gremlins@$GREMLINS_VERSION"
    mv "$BIN/gremlins" "$BIN/gremlins-$GREMLINS_VERSION"
  fi
  printf '%-20s %7s %6s %7s %9s %7s  %s\n' package killed lived timeout uncovered score note
  for pkg in "$@"; do
    log="$OUT/$(echo "$pkg" | tr / _).log"
    note=""
    set +e
    # No --test-cpu: gremlins v0.6.0 passes it to go test as the single
    # argument "-cpu N", which go test reads as a package path, so every run
    # failed at setup and every covered mutant counted as KILLED.
    # GOMAXPROCS=1 limits the test binary (and the build) instead.
    GOMAXPROCS=1 timeout "$BUDGET" "$BIN/gremlins-$GREMLINS_VERSION" unleash --workers 1 \
      --timeout-coefficient 5 --invert-logical "./$pkg" >"$log" 2>&1
    rc=$?
    set -e
    [ "$rc" = 124 ] && note="cut off after ${BUDGET}s"
    killed=$(grep -c '^ *KILLED ' "$log" || true)
    lived=$(grep -c '^ *LIVED ' "$log" || true)
    tout=$(grep -c '^ *TIMED OUT ' "$log" || true)
    uncovered=$(grep -c '^ *NOT COVERED ' "$log" || true)
    if [ $((killed + lived)) -gt 0 ]; then
      score="$((100 * killed / (killed + lived)))%"
    else
      score="-"
      [ -z "$note" ] && note="no mutant covered by the package's own tests"
    fi
    printf '%-20s %7s %6s %7s %9s %7s  %s\n' "$pkg" "$killed" "$lived" "$tout" "$uncovered" "$score" "$note"
  done
  echo "surviving mutants: grep LIVED $OUT/*.log"
}

# name|file|exact text|replacement|package|test regexp
NAMED=(
  "ppml header MAC check disabled|dataformat/stream/header.go|if !hmac.Equal(m.Sum(nil), h.mac) {|if false && !hmac.Equal(m.Sum(nil), h.mac) {|./dataformat/stream|."
  ".cbc MAC check disabled (first pass, Open)|dataformat/bigdl/bigdl.go|if !hmac.Equal(mac.Sum(nil), tag) {|if false && !hmac.Equal(mac.Sum(nil), tag) {|./dataformat/bigdl|."
  ".cbc MAC check disabled (second pass, Read)|dataformat/bigdl/bigdl.go|if !hmac.Equal(r.mac.Sum(nil), r.tag) {|if false && !hmac.Equal(r.mac.Sum(nil), r.tag) {|./dataformat/bigdl|."
  "quote signature check disabled|quote/verify/verify.go|if !ecdsa.Verify(ak, qh[:], r, s) {|if false && !ecdsa.Verify(ak, qh[:], r, s) {|./quote/verify|."
  "QE report signature check disabled|quote/verify/verify.go|if !ecdsa.Verify(pckKey, h[:], r, s) {|if false && !ecdsa.Verify(pckKey, h[:], r, s) {|./quote/verify|."
  "TCB info / QE identity signature check disabled|quote/verify/collateral.go|return ecdsa.Verify(k, h[:], r, s)|return ecdsa.Verify(k, h[:], r, s) == ecdsa.Verify(k, h[:], r, s)|./quote/verify|."
  "TCB level: SGX component SVNs not compared|quote/verify/tcb.go|if int(x.CompSVN[i]) < l.TCB.SGXComponents[i].SVN {|if false && int(x.CompSVN[i]) < l.TCB.SGXComponents[i].SVN {|./quote/verify|."
  "TCB level: TDX component SVNs not compared|quote/verify/tcb.go|if int(svn[j]) < l.TCB.TDXComponents[j].SVN {|if false && int(svn[j]) < l.TCB.TDXComponents[j].SVN {|./quote/verify|."
  "PCK CRL revocation ignored|quote/verify/verify.go|return fail(FailPCKRevoked, \"%s %q (serial %x) is revoked\", what, c.Subject.CommonName, c.SerialNumber)|_ = what|./quote/sim|."
  "eHSM quote answer signed with the app id|api/ehsm/quotes.go|res[\"sign\"] = ehsmsig.Sign([]byte(apiKey), |res[\"sign\"] = ehsmsig.Sign([]byte(appID), |./server|TestAttestSimulatedEndToEnd"
  "eHSM request signature not checked|api/ehsm/ehsm.go|if !ehsmsig.Verify(apiKey, canon, env.sign) {|if false && !ehsmsig.Verify(apiKey, canon, env.sign) {|./server|TestEnvelopeRules"
  "key of another app usable (tenancy)|kms/keys.go|(err == nil && k.Owner != c.ID)|(err == nil && false)|./server|TestTenancy|TestNotYoursIsNotFound"
  "nonce not consumed (reuse on any replica)|store/sqlstore/attest.go|DELETE FROM attest_nonces WHERE nonce = ? AND owner = ? RETURNING expires_at|SELECT expires_at FROM attest_nonces WHERE nonce = ? AND owner = ?|./server|TestReplicaNonceSingleUse"
  "token signature not checked|wire/token/token.go|if err := parsed.Claims(pub, &c); err != nil {|_ = pub; if err := parsed.UnsafeClaimsWithoutVerification(&c); err != nil {|./agent|TestReleaseRefusals"
  "token expiry not checked|wire/token/token.go|case !now.Before(exp.Add(leeway)):|case false:|./server|TestReplicaToken"
  "release runtime_data not compared|kms/release.go|if subtle.ConstantTimeCompare(got[:], want) != 1 {|if false && subtle.ConstantTimeCompare(got[:], want) != 1 {|./agent|TestReleaseRefusals"
)

named_part() {
  source "$ROOT/scripts/postgres.sh"
  local scratch
  scratch=$(mktemp -d)
  trap 'stop_postgres; rm -rf "$scratch"' RETURN
  git -C "$ROOT" archive HEAD | tar -x -C "$scratch"
  local failed=0
  for m in "${NAMED[@]}"; do
    IFS='|' read -r name file from to pkg run run2 <<<"$m"
    [ -n "${run2:-}" ] && run="$run|$run2"
    cp "$scratch/$file" "$scratch/$file.orig"
    if ! FROM="$from" TO="$to" perl -0pi -e 'my $n = s/\Q$ENV{FROM}\E/$ENV{TO}/g; END { exit($n == 1 ? 0 : 3) }' "$scratch/$file"; then
      printf 'BROKEN    %s: the text to mutate is not exactly once in %s (update scripts/mutation.sh)\n' "$name" "$file"
      failed=1
      mv "$scratch/$file.orig" "$scratch/$file"
      continue
    fi
    if (cd "$scratch" && go test -count=1 -run "$run" "$pkg" >"$OUT/named.log" 2>&1); then
      printf 'SURVIVED  %s (%s, go test -run %q %s passes)\n' "$name" "$file" "$run" "$pkg"
      failed=1
    elif grep -q -e '\[build failed\]' -e '\[setup failed\]' "$OUT/named.log"; then
      printf 'BROKEN    %s: the mutated %s does not compile (update scripts/mutation.sh)\n' "$name" "$file"
      failed=1
    else
      printf 'KILLED    %s (%s)\n' "$name" "$file"
    fi
    mv "$scratch/$file.orig" "$scratch/$file"
  done
  return $failed
}

case "${1:-all}" in
  gremlins) shift; gremlins_part "${@:-${PACKAGES[@]}}" ;;
  named) named_part ;;
  all) gremlins_part "${PACKAGES[@]}"; named_part ;;
  *) echo "usage: $0 [gremlins [PKG...] | named]" >&2; exit 2 ;;
esac
