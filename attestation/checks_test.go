package attestation_test

// Tests of the service's own checks, in process over a real SQLite store
// and the simulation PKI (they kill the gremlins survivors of this package;
// docs/testing.md).

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ppml-project/ppml/attestation"
	"github.com/ppml-project/ppml/audit"
	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/kms/rootkey"
	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/policy"
	"github.com/ppml-project/ppml/quote/quotetest"
	"github.com/ppml-project/ppml/quote/verify"
	"github.com/ppml-project/ppml/store/sqlstore"
)

// lockedBuffer is a bytes.Buffer safe for the logger's and the test's use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// events returns the audit records written so far, and forgets them.
func (l *lockedBuffer) events(t *testing.T) []audit.Event {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var evs []audit.Event
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var e audit.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		evs = append(evs, e)
	}
	l.b.Reset()
	return evs
}

// observed is a fixture whose audit records and log lines are kept.
func observed(t *testing.T, allowSim bool, edit func(*attestation.Config)) (*fixture, *lockedBuffer, *lockedBuffer) {
	t.Helper()
	auditBuf, logBuf := &lockedBuffer{}, &lockedBuffer{}
	f := newFixtureWith(t, allowSim, "", func(c *attestation.Config) {
		c.Audit = audit.New(auditBuf)
		c.Logger = slog.New(slog.NewTextHandler(logBuf, nil))
		if edit != nil {
			edit(c)
		}
	})
	return f, auditBuf, logBuf
}

func codeOf(err error) string {
	var rf *attestation.Refusal
	if errors.As(err, &rf) {
		return rf.Code
	}
	return fault.CodeOf(err)
}

// tamperBody flips a byte of the report body (MRENCLAVE / MRTD): the quote
// still parses and its PCK chain holds, but its signature does not.
func tamperBody(q []byte) []byte {
	out := append([]byte{}, q...)
	out[abi.HeaderSize+70] ^= 1
	return out
}

func (f *fixture) nonce(t *testing.T) []byte {
	t.Helper()
	n, err := f.as.NewNonce(context.Background(), f.appID)
	if err != nil {
		t.Fatal(err)
	}
	return n.Value
}

func TestSizeLimitsAreInclusive(t *testing.T) {
	f := newFixture(t, true, "")
	ctx := context.Background()
	rt := bytes.Repeat([]byte{7}, attestation.MaxRuntime)
	n := f.nonce(t)
	q := f.quote(t, abi.SGX, n, rt, false)
	padded := append(append([]byte{}, q...), make([]byte, attestation.MaxQuoteBytes-len(q))...)
	// A quote of exactly MaxQuoteBytes (trailing bytes are accepted by the
	// default verifier) with runtime data of exactly MaxRuntime passes.
	if v := f.as.VerifyQuote(ctx, padded); v.Reason != "" {
		t.Fatalf("VerifyQuote of a %d-byte quote: %s %s", len(padded), v.Reason, v.Message)
	}
	if _, err := f.as.Attest(ctx, attestation.Request{AppID: f.appID, Quote: padded, Nonce: n, RuntimeData: rt}); err != nil {
		t.Fatalf("Attest with a %d-byte quote and %d bytes of runtime data: %v", len(padded), len(rt), err)
	}
	over := append(padded, 0)
	if v := f.as.VerifyQuote(ctx, over); v.Reason != attestation.ReasonMalformed || !strings.Contains(v.Message, "more than the 16384 accepted") {
		t.Fatalf("VerifyQuote of %d bytes: %q %q", len(over), v.Reason, v.Message)
	}
	n = f.nonce(t)
	if _, err := f.as.Attest(ctx, attestation.Request{AppID: f.appID, Quote: over, Nonce: n}); codeOf(err) != "quote_too_large" {
		t.Fatalf("Attest with %d bytes: %v", len(over), err)
	}
	if _, err := f.as.Attest(ctx, attestation.Request{AppID: f.appID, Quote: q, Nonce: n, RuntimeData: append(rt, 0)}); codeOf(err) != "runtime_data_too_large" {
		t.Fatalf("Attest with %d bytes of runtime data: %v", len(rt)+1, err)
	}
}

func TestReportDataMustBindNonceAndRuntimeData(t *testing.T) {
	f := newFixture(t, true, "")
	ctx := context.Background()
	n := f.nonce(t)
	q := f.quote(t, abi.SGX, n, []byte("runtime A"), false)
	_, err := f.as.Attest(ctx, attestation.Request{AppID: f.appID, Quote: q, Nonce: n, RuntimeData: []byte("runtime B")})
	if codeOf(err) != attestation.ReasonReportDataMismatch {
		t.Fatalf("other runtime data: %v", err)
	}
	n2 := f.nonce(t)
	if _, err := f.as.Attest(ctx, attestation.Request{AppID: f.appID, Quote: q, Nonce: n2, RuntimeData: []byte("runtime A")}); codeOf(err) != attestation.ReasonReportDataMismatch {
		t.Fatalf("other nonce: %v", err)
	}
}

// Expired collateral is refused unless the policy allows it, and that
// allowance excuses nothing else.
func TestAllowExpiredCollateralExcusesOnlyExpiry(t *testing.T) {
	f := newFixture(t, true, "")
	ctx := context.Background()
	lenient, err := f.as.CreatePolicy(ctx, f.appID, "native", &policy.Policy{AllowSimulated: true, AllowExpiredCollateral: true})
	if err != nil {
		t.Fatal(err)
	}
	f.now = f.now.AddDate(1, 1, 0) // past the simulated collateral (1 year), within its certificates (10 years)
	attest := func(q []byte, n []byte, policyID string) (*attestation.Attestation, error) {
		return f.as.Attest(ctx, attestation.Request{AppID: f.appID, Quote: q, Nonce: n, RuntimeData: []byte("rt"), PolicyID: policyID})
	}
	n := f.nonce(t)
	_, err = attest(f.quote(t, abi.SGX, n, []byte("rt"), false), n, "")
	var rf *attestation.Refusal
	if !errors.As(err, &rf) || rf.Code != attestation.ReasonNotVerified || rf.Result == nil || rf.Result.Failure != verify.FailCollateralExpired {
		t.Fatalf("expired collateral, default policy: %v", err)
	}
	n = f.nonce(t)
	att, err := attest(f.quote(t, abi.SGX, n, []byte("rt"), false), n, lenient.ID)
	if err != nil {
		t.Fatalf("expired collateral, allow_expired_collateral: %v", err)
	}
	if att.Token == "" || att.Claims.PolicyID != lenient.ID {
		t.Fatalf("attestation %+v", att)
	}
	n = f.nonce(t)
	_, err = attest(tamperBody(f.quote(t, abi.SGX, n, []byte("rt"), false)), n, lenient.ID)
	if !errors.As(err, &rf) || rf.Code != attestation.ReasonNotVerified || rf.Result == nil || rf.Result.Failure != verify.FailQuoteSignature {
		t.Fatalf("bad signature, allow_expired_collateral: %v", err)
	}
	n = f.nonce(t)
	if _, err = attest([]byte("not a quote"), n, lenient.ID); codeOf(err) != attestation.ReasonMalformed {
		t.Fatalf("malformed quote, allow_expired_collateral: %v", err)
	}
}

func TestClaimsAndTokenSettings(t *testing.T) {
	f := newFixture(t, true, "")
	att, err := f.attest(t, abi.SGX)
	if err != nil {
		t.Fatal(err)
	}
	c := att.Claims
	if c.Issuer != "ppml" || c.AppID != f.appID || c.Subject != f.appID || c.TCBStatus != verify.StatusUpToDate ||
		c.AdvisoryIDs == nil || len(c.AdvisoryIDs) != 0 || c.TEE != "sgx" || !c.Simulated || c.Debug {
		t.Fatalf("claims %+v", c)
	}
	for _, tc := range []struct {
		ttl  time.Duration
		want int64
	}{{time.Minute, 60}, {5 * time.Minute, 300}, {10 * time.Minute, 300}, {-time.Second, 300}} {
		g := newFixtureWith(t, true, "", func(c *attestation.Config) { c.TokenTTL, c.Issuer = tc.ttl, "issuer-x" })
		att, err := g.attest(t, abi.TDX)
		if err != nil {
			t.Fatal(err)
		}
		if got := att.Claims.ExpiresAt - att.Claims.IssuedAt; got != tc.want || att.Claims.Issuer != "issuer-x" {
			t.Errorf("TokenTTL %s: lifetime %d s (want %d), issuer %q", tc.ttl, got, tc.want, att.Claims.Issuer)
		}
		vc, err := g.as.VerifyToken(context.Background(), att.Token)
		if err != nil || vc.Issuer != "issuer-x" {
			t.Errorf("VerifyToken: %+v %v", vc, err)
		}
	}
}

func TestNewNeedsRootAndStore(t *testing.T) {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "ppml.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kr, _, err := rootkey.OpenFile(ctx, st, filepath.Join(t.TempDir(), "root.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]attestation.Config{"no root": {Store: st}, "no store": {Root: kr}} {
		if _, err := attestation.New(ctx, cfg); err == nil || err.Error() != "attestation: Root and Store are required" {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A service started while the KMS is sealed makes its signing key on first
// use after the unseal.
func TestSigningKeyMadeAfterUnseal(t *testing.T) {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "ppml.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kr, err := rootkey.NewShamir(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	as, err := attestation.New(ctx, attestation.Config{Store: st, Root: kr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := as.JWKS(ctx); fault.CodeOf(err) != "sealed" {
		t.Fatalf("JWKS while sealed: %v", err)
	}
	if _, err := kr.Init(ctx); err != nil {
		t.Fatal(err)
	}
	j, err := as.JWKS(ctx)
	if err != nil || len(j.Keys) != 1 {
		t.Fatalf("JWKS after unseal: %+v %v", j, err)
	}
	j2, err := as.JWKS(ctx)
	if err != nil || len(j2.Keys) != 1 || j2.Keys[0].KeyID != j.Keys[0].KeyID {
		t.Fatalf("JWKS again: %+v %v", j2, err)
	}
}

func TestVerdictAccessors(t *testing.T) {
	f := newFixture(t, true, "")
	ctx := context.Background()
	v := f.as.VerifyQuote(ctx, f.quote(t, abi.TDX, nil, nil, false))
	if v.Reason != "" || v.TEE() != "tdx" || !v.Simulated() || v.TCBStatus() != verify.StatusUpToDate {
		t.Fatalf("simulated TDX quote: %q %q %v %q", v.Reason, v.TEE(), v.Simulated(), v.TCBStatus())
	}
	v = f.as.VerifyQuote(ctx, []byte("not a quote"))
	if v.Reason != attestation.ReasonMalformed || v.TEE() != "" || v.Simulated() || v.TCBStatus() != "" {
		t.Fatalf("malformed quote: %q %q %v %q", v.Reason, v.TEE(), v.Simulated(), v.TCBStatus())
	}
	// A real Intel quote is not simulated.
	vec := quotetest.Load(t, "sgx-phala")
	colDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(colDir, "c.json"), vec.Collateral, 0o600); err != nil {
		t.Fatal(err)
	}
	g := newFixture(t, false, colDir)
	g.now = vec.At
	v = g.as.VerifyQuote(ctx, vec.Quote)
	if v.Result == nil || v.TEE() != "sgx" || v.Simulated() {
		t.Fatalf("Intel quote: %+v %q %v", v, v.TEE(), v.Simulated())
	}
}

// The BigDL AS / eHSM verdicts: QVL codes, the debug flag, the audit
// result and the debug-enclave warning.
func TestLegacyVerdictDetails(t *testing.T) {
	ctx := context.Background()
	f, aud, logs := observed(t, true, nil)
	good := f.quote(t, abi.SGX, nil, nil, false)
	v := f.as.VerifyLegacy(ctx, "bigdl-as", f.appID, "", good, nil, nil)
	if v.QVL != attestation.QVLOK || v.BigDL() != 0 || v.Reason != "" || v.Debug || v.Err != nil {
		t.Fatalf("good quote: %+v", v)
	}
	v = f.as.VerifyLegacy(ctx, "bigdl-as", f.appID, "", tamperBody(good), nil, nil)
	if v.QVL != attestation.QVLInvalidSignature || v.Reason != attestation.ReasonNotVerified || v.Debug {
		t.Fatalf("bad signature: %+v", v)
	}
	v = f.as.VerifyLegacy(ctx, "bigdl-as", f.appID, "", []byte("not a quote"), nil, nil)
	if v.QVL != attestation.QVLUnspecified || v.Reason != attestation.ReasonMalformed || v.Debug {
		t.Fatalf("malformed quote: %+v", v)
	}
	debugQ := f.quote(t, abi.SGX, nil, nil, true)
	v = f.as.VerifyLegacy(ctx, "bigdl-as", f.appID, "", debugQ, nil, nil)
	if v.QVL != attestation.QVLUnspecified || v.Reason != attestation.ReasonPolicy || !v.Debug {
		t.Fatalf("debug quote, debug not allowed: %+v", v)
	}
	evs := aud.events(t)
	want := []struct{ result, reason string }{{"ok", "simulated: true"}, {attestation.ReasonNotVerified, ""}, {attestation.ReasonMalformed, ""}, {attestation.ReasonPolicy, ""}}
	if len(evs) != len(want) {
		t.Fatalf("audit events %+v", evs)
	}
	for i, e := range evs {
		if e.API != "bigdl-as" || e.Action != "VerifyQuote" || e.Principal != f.appID || e.Result != want[i].result ||
			(want[i].reason != "" && e.Reason != want[i].reason) || (want[i].reason == "" && e.Reason == "") {
			t.Errorf("audit event %d: %+v, want result %q", i, e, want[i].result)
		}
	}
	if strings.Contains(logs.String(), "DEBUG ENCLAVE accepted") {
		t.Fatalf("debug warning without an accepted debug enclave:\n%s", logs)
	}

	d, aud, logs := observed(t, true, func(c *attestation.Config) { c.AllowDebugEnclaves = true })
	v = d.as.VerifyLegacy(ctx, "ehsm", d.appID, "", d.quote(t, abi.SGX, nil, nil, true), nil, nil)
	if v.QVL != attestation.QVLOK || v.Reason != "" || !v.Debug {
		t.Fatalf("debug quote, debug allowed: %+v", v)
	}
	if evs := aud.events(t); len(evs) != 1 || evs[0].Result != "ok" {
		t.Fatalf("audit events %+v", evs)
	}
	if n := strings.Count(logs.String(), "DEBUG ENCLAVE accepted"); n != 1 {
		t.Fatalf("%d debug warnings for one accepted debug enclave:\n%s", n, logs)
	}
	if v = d.as.VerifyLegacy(ctx, "ehsm", d.appID, "", tamperBody(d.quote(t, abi.SGX, nil, nil, true)), nil, nil); v.Reason == "" {
		t.Fatalf("tampered debug quote: %+v", v)
	}
	if n := strings.Count(logs.String(), "DEBUG ENCLAVE accepted"); n != 1 {
		t.Fatalf("debug warning for a refused debug enclave:\n%s", logs)
	}
}

// Every native attestation is audited under its API with its outcome.
func TestAttestAudit(t *testing.T) {
	ctx := context.Background()
	f, aud, logs := observed(t, true, nil)
	if !strings.Contains(logs.String(), "simulated quotes are accepted (--allow-simulation)") {
		t.Fatalf("no simulation warning in the configured log:\n%s", logs)
	}
	n := f.nonce(t)
	if _, err := f.as.Attest(ctx, attestation.Request{AppID: f.appID, Quote: f.quote(t, abi.SGX, n, nil, false), Nonce: n, Remote: "10.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	n = f.nonce(t)
	if _, err := f.as.Attest(ctx, attestation.Request{AppID: f.appID, API: "bigdl-as", Quote: f.quote(t, abi.SGX, n, []byte("x"), false), Nonce: n}); codeOf(err) != attestation.ReasonReportDataMismatch {
		t.Fatal(err)
	}
	evs := aud.events(t)
	if len(evs) != 2 {
		t.Fatalf("audit events %+v", evs)
	}
	if e := evs[0]; e.API != "native" || e.Result != "ok" || e.Reason != "simulated: true" || e.Remote != "10.0.0.1" || e.Principal != f.appID {
		t.Errorf("accepted: %+v", e)
	}
	if e := evs[1]; e.API != "bigdl-as" || e.Result != attestation.ReasonReportDataMismatch || !strings.Contains(e.Reason, "report_data") {
		t.Errorf("refused: %+v", e)
	}
}

// ForgedQuoteDelay holds back the answer to a forged quote only.
func TestForgedQuoteDelay(t *testing.T) {
	const delay = 1500 * time.Millisecond
	f := newFixtureWith(t, true, "", func(c *attestation.Config) { c.ForgedQuoteDelay = delay })
	ctx := context.Background()
	good := f.quote(t, abi.SGX, nil, nil, false)
	f.as.VerifyQuote(ctx, good) // warm caches
	start := time.Now()
	if v := f.as.VerifyQuote(ctx, good); v.Reason != "" {
		t.Fatal(v.Message)
	}
	if d := time.Since(start); d >= delay {
		t.Fatalf("a good quote waited %s", d)
	}
	start = time.Now()
	if v := f.as.VerifyQuote(ctx, tamperBody(good)); v.Reason != attestation.ReasonNotVerified {
		t.Fatal(v.Reason, v.Message)
	}
	if d := time.Since(start); d < delay {
		t.Fatalf("a forged quote was answered after %s, before the %s delay", d, delay)
	}
	// A PCK chain that does not decode is forged too.
	chain := append([]byte{}, good...)
	chain[len(chain)-300] ^= 1
	start = time.Now()
	if v := f.as.VerifyQuote(ctx, chain); v.Reason != attestation.ReasonNotVerified || v.Result == nil || v.Result.Failure != "" {
		t.Fatalf("broken PCK chain: %q %q %+v", v.Reason, v.Message, v.Result)
	}
	if d := time.Since(start); d < delay {
		t.Fatalf("a quote with a broken PCK chain was answered after %s, before the %s delay", d, delay)
	}
	// Expired collateral is not the quote's fault.
	f.now = f.now.AddDate(1, 1, 0)
	start = time.Now()
	if v := f.as.VerifyQuote(ctx, good); v.Result == nil || v.Result.Failure != verify.FailCollateralExpired {
		t.Fatalf("expired collateral: %q %q", v.Reason, v.Message)
	}
	if d := time.Since(start); d >= delay {
		t.Fatalf("a quote with expired collateral waited %s", d)
	}
}

// eHSM's opt-in nonce binding: report_data must start with SHA-256(nonce).
func TestLegacyNonceBinding(t *testing.T) {
	f := newFixture(t, true, "")
	ctx := context.Background()
	q := f.quote(t, abi.SGX, []byte("the nonce"), nil, false) // report data SHA-256("the nonce")
	if v := f.as.VerifyLegacy(ctx, "ehsm", f.appID, "", q, nil, []byte("the nonce")); v.QVL != attestation.QVLOK || v.Reason != "" {
		t.Fatalf("bound nonce: %+v", v)
	}
	if v := f.as.VerifyLegacy(ctx, "ehsm", f.appID, "", q, nil, nil); v.QVL != attestation.QVLOK || v.Reason != "" {
		t.Fatalf("no nonce binding asked: %+v", v)
	}
	v := f.as.VerifyLegacy(ctx, "ehsm", f.appID, "", q, nil, []byte("another nonce"))
	if v.QVL != attestation.QVLUnspecified || v.Reason != attestation.ReasonReportDataMismatch || !strings.Contains(v.Message, "--ehsm-bind-nonce") {
		t.Fatalf("other nonce: %+v", v)
	}
	// A policy refusal of a non-debug quote does not mention debug enclaves.
	sp, err := f.as.CreatePolicy(ctx, f.appID, "ehsm", &policy.Policy{MREnclave: []string{strings.Repeat("ab", 32)}})
	if err != nil {
		t.Fatal(err)
	}
	v = f.as.VerifyLegacy(ctx, "ehsm", f.appID, "", q, sp, nil)
	if v.Reason != attestation.ReasonPolicy || strings.Contains(v.Message, "allow-debug-enclaves") || !strings.Contains(v.Message, "mr_enclave") {
		t.Fatalf("policy refusal: %+v", v)
	}
	v = f.as.VerifyLegacy(ctx, "ehsm", f.appID, "", f.quote(t, abi.SGX, nil, nil, true), nil, nil)
	if v.Reason != attestation.ReasonPolicy || !strings.Contains(v.Message, "--allow-debug-enclaves") {
		t.Fatalf("debug refusal: %+v", v)
	}
}

// An operation that cannot be audited is not acknowledged.
func TestUnauditedIsRefused(t *testing.T) {
	f := newFixtureWith(t, true, "", func(c *attestation.Config) { c.Audit = audit.New(failingWriter{}) })
	ctx := context.Background()
	if _, err := f.as.CreatePolicy(ctx, f.appID, "native", &policy.Policy{AllowSimulated: true}); fault.CodeOf(err) != "audit_unavailable" {
		t.Fatalf("CreatePolicy: %v", err)
	}
	if _, err := f.attest(t, abi.SGX); fault.CodeOf(err) != "audit_unavailable" {
		t.Fatalf("Attest: %v", err)
	}
	if v := f.as.VerifyLegacy(ctx, "ehsm", f.appID, "", f.quote(t, abi.SGX, nil, nil, false), nil, nil); v.QVL != attestation.QVLUnspecified || v.Reason != "audit_unavailable" {
		t.Fatalf("VerifyLegacy: %+v", v)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// An unknown policy id is reported as such (and nothing is kept for it).
func TestAttestUnknownPolicy(t *testing.T) {
	f := newFixture(t, true, "")
	n := f.nonce(t)
	_, err := f.as.Attest(context.Background(), attestation.Request{AppID: f.appID, Quote: f.quote(t, abi.SGX, n, nil, false), Nonce: n, PolicyID: "no-such-policy"})
	if codeOf(err) != "policy_not_found" {
		t.Fatalf("unknown policy: %v", err)
	}
}

// The first start after the upgrade that brought row MACs says how many
// policies it authenticated; any other start says nothing.
func TestPolicyBackfillLogged(t *testing.T) {
	f, _, logs := observed(t, true, nil)
	ctx := context.Background()
	sp, err := f.as.CreatePolicy(ctx, f.appID, "native", &policy.Policy{AllowSimulated: true})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "row integrity") {
		t.Fatalf("fresh store:\n%s", logs)
	}
	raw, err := sql.Open("sqlite", f.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	// As a database from before row MACs: no MAC, no backfill marker.
	for _, q := range []string{`UPDATE attest_policies SET mac = NULL`, `DELETE FROM meta WHERE name = 'row-mac-backfilled/v1/attest_policies'`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	upgraded := &lockedBuffer{}
	as, err := attestation.New(ctx, attestation.Config{Store: f.st, Root: f.kr, Logger: slog.New(slog.NewTextHandler(upgraded, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := as.Policy(ctx, f.appID, sp.ID); err != nil {
		t.Fatal(err)
	}
	if s := upgraded.String(); strings.Count(s, "row integrity: authenticated attestation policies") != 1 || !strings.Contains(s, "rows=1") {
		t.Fatalf("upgrade start:\n%s", s)
	}
}
