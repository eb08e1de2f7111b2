package attestation_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml-project/ppml/attestation"
	"github.com/ppml-project/ppml/kms"
	"github.com/ppml-project/ppml/kms/rootkey"
	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/collateral"
	"github.com/ppml-project/ppml/quote/quotetest"
	"github.com/ppml-project/ppml/quote/sim"
	"github.com/ppml-project/ppml/quote/verify"
	"github.com/ppml-project/ppml/store/sqlstore"
	"github.com/ppml-project/ppml/wire/token"
)

type fixture struct {
	as    *attestation.Service
	sim   *sim.SimTEE
	now   time.Time
	appID string
	// the store (dbPath, a SQLite file) and the root keyring under as
	st     *sqlstore.DB
	kr     *rootkey.Keyring
	dbPath string
}

func newFixture(tb testing.TB, allowSim bool, colDir string) *fixture {
	tb.Helper()
	return newFixtureWith(tb, allowSim, colDir, nil)
}

// newFixtureWith is newFixture with the service's Config edited first.
func newFixtureWith(tb testing.TB, allowSim bool, colDir string, edit func(*attestation.Config)) *fixture {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	st, err := sqlstore.Open(ctx, filepath.Join(dir, "ppml.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	kr, _, err := rootkey.OpenFile(ctx, st, filepath.Join(dir, "root.key"), true)
	if err != nil {
		tb.Fatal(err)
	}
	f := &fixture{now: time.Now(), st: st, kr: kr, dbPath: filepath.Join(dir, "ppml.db")}
	svc := kms.New(kms.Config{Store: st, Root: kr, Now: func() time.Time { return f.now }})
	f.appID, _, err = svc.Enroll(ctx, kms.Caller{API: "test"})
	if err != nil {
		tb.Fatal(err)
	}
	cfg := attestation.Config{Store: st, Root: kr, Now: svc.Now, AllowSimulation: allowSim,
		SimDir: filepath.Join(dir, "sim"), CollateralDir: colDir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if edit != nil {
		edit(&cfg)
	}
	f.as, err = attestation.New(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	f.sim = f.as.Sim()
	return f
}

func (f *fixture) quote(tb testing.TB, tee abi.TEE, nonce, runtime []byte, debug bool) []byte {
	m := sim.Measurements{Debug: debug}
	h := sha256.Sum256(append(append([]byte{}, nonce...), runtime...))
	copy(m.ReportData[:], h[:])
	q, err := f.sim.Quote(tee, m)
	if err != nil {
		tb.Fatal(err)
	}
	return q
}

func (f *fixture) attest(tb testing.TB, tee abi.TEE) (*attestation.Attestation, error) {
	ctx := context.Background()
	n, err := f.as.NewNonce(ctx, f.appID)
	if err != nil {
		tb.Fatal(err)
	}
	rt := []byte("runtime")
	return f.as.Attest(ctx, attestation.Request{AppID: f.appID, Quote: f.quote(tb, tee, n.Value, rt, false), Nonce: n.Value, RuntimeData: rt})
}

func TestTokenLifetime(t *testing.T) {
	f := newFixture(t, true, "")
	ctx := context.Background()
	att, err := f.attest(t, abi.TDX)
	if err != nil {
		t.Fatal(err)
	}
	if !att.Claims.Simulated || att.Claims.ExpiresAt-att.Claims.IssuedAt != 300 {
		t.Fatalf("claims %+v", att.Claims)
	}
	if _, err := f.as.VerifyToken(ctx, att.Token); err != nil {
		t.Fatal(err)
	}
	jwks, _ := f.as.JWKS(ctx)
	f.now = f.now.Add(5 * time.Minute)
	if _, err := f.as.VerifyToken(ctx, att.Token); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v", err)
	}
	if _, err := token.VerifyJWKS(att.Token, jwks, f.now, 10*time.Second); err != nil {
		t.Fatalf("leeway: %v", err)
	}
	if _, err := token.VerifyJWKS(att.Token, jwks, f.now.Add(-10*time.Minute), 0); err == nil || !strings.Contains(err.Error(), "future") {
		t.Fatalf("token from the future: %v", err)
	}
	// A token of another key (another server) is refused by kid.
	g := newFixture(t, true, "")
	other, err := g.attest(t, abi.SGX)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := token.VerifyJWKS(other.Token, jwks, g.now, 0); err == nil || !strings.Contains(err.Error(), "not in the key set") {
		t.Fatalf("other key: %v", err)
	}
}

func TestLegacyCodes(t *testing.T) {
	for qvl, want := range map[int]int{0: 0, 0xA001: 1, 0xA002: 1, 0xA003: 1, 0xA007: 1, 0xA008: 1, 0xA004: -1, 0xA005: -1, 0xA006: -1, 0xA009: -1, 0xA00A: -1} {
		if got := attestation.BigDLResult(qvl); got != want {
			t.Errorf("BigDLResult(%#x) = %d, want %d", qvl, got, want)
		}
	}
	f := newFixture(t, true, "")
	q := f.quote(t, abi.SGX, nil, nil, false)
	q[len(q)-300] ^= 1 // inside the PCK chain PEM / signature data
	v := f.as.VerifyLegacy(context.Background(), "test", f.appID, "", q, nil, nil)
	if v.BigDL() != -1 || v.Message == "" {
		t.Fatalf("tampered quote: %+v", v)
	}
}

// --- benchmarks: quote verifications per second and the cost split ---

func benchFixture(b *testing.B) *fixture {
	f := newFixture(b, true, "")
	return f
}

// BenchmarkServiceVerifySGX is the service pipeline (parse, sim-root
// detection, collateral choice, verify with warm caches), no policy.
func BenchmarkServiceVerifySGX(b *testing.B) {
	f := benchFixture(b)
	q := f.quote(b, abi.SGX, nil, nil, false)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if v := f.as.VerifyQuote(ctx, q); v.Reason != "" {
			b.Fatal(v.Message)
		}
	}
}

func BenchmarkServiceVerifyTDX(b *testing.B) {
	f := benchFixture(b)
	q := f.quote(b, abi.TDX, nil, nil, false)
	ctx := context.Background()
	for b.Loop() {
		if v := f.as.VerifyQuote(ctx, q); v.Reason != "" {
			b.Fatal(v.Message)
		}
	}
}

// BenchmarkServiceVerifyIntelSGX verifies the real sgx-phala quote with
// --collateral-dir (clock at the vector's time).
func BenchmarkServiceVerifyIntelSGX(b *testing.B) {
	v := quotetest.Load(b, "sgx-phala")
	q := v.Quote
	colDir := b.TempDir()
	if err := os.WriteFile(filepath.Join(colDir, "c.json"), v.Collateral, 0o600); err != nil {
		b.Fatal(err)
	}
	f := newFixture(b, false, colDir)
	f.now = v.At
	ctx := context.Background()
	for b.Loop() {
		if v := f.as.VerifyQuote(ctx, q); v.Reason != "" {
			b.Fatal(v.Message)
		}
	}
}

// BenchmarkAttestNative is the whole native flow in process: nonce
// (store insert), consume (store delete), verify, report data, policy,
// ES256 token.
func BenchmarkAttestNative(b *testing.B) {
	f := benchFixture(b)
	ctx := context.Background()
	rt := []byte("runtime")
	for b.Loop() {
		b.StopTimer()
		n, err := f.as.NewNonce(ctx, f.appID)
		if err != nil {
			b.Fatal(err)
		}
		q := f.quote(b, abi.SGX, n.Value, rt, false)
		b.StartTimer()
		if _, err := f.as.Attest(ctx, attestation.Request{AppID: f.appID, Quote: q, Nonce: n.Value, RuntimeData: rt}); err != nil {
			b.Fatal(err)
		}
	}
}

// Cost split parts.

func BenchmarkPartParse(b *testing.B) {
	f := benchFixture(b)
	q := f.quote(b, abi.SGX, nil, nil, false)
	for b.Loop() {
		if _, err := abi.ParseQuote(q); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPartInspect(b *testing.B) {
	f := benchFixture(b)
	q := f.quote(b, abi.SGX, nil, nil, false)
	for b.Loop() {
		if _, err := verify.Inspect(q); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPartChainPEM(b *testing.B) {
	f := benchFixture(b)
	q, _ := abi.ParseQuote(f.quote(b, abi.SGX, nil, nil, false))
	for b.Loop() {
		if _, err := collateral.ParseChain(q.PCKChainPEM); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPartVerifierWarm(b *testing.B) {
	f := benchFixture(b)
	q := f.quote(b, abi.SGX, nil, nil, false)
	col, _ := f.sim.Collateral(abi.SGX)
	v, _ := verify.New(f.sim.VerifyOptions(func() time.Time { return f.now }))
	for b.Loop() {
		if _, err := v.Verify(q, col); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPartVerifierCold(b *testing.B) {
	f := benchFixture(b)
	q := f.quote(b, abi.SGX, nil, nil, false)
	col, _ := f.sim.Collateral(abi.SGX)
	for b.Loop() {
		if _, err := verify.Verify(q, col, f.sim.VerifyOptions(func() time.Time { return f.now })); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPartTokenVerify(b *testing.B) {
	f := benchFixture(b)
	att, err := f.attest(b, abi.SGX)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if _, err := f.as.VerifyToken(ctx, att.Token); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPartNonceInsert(b *testing.B) {
	f := benchFixture(b)
	ctx := context.Background()
	for b.Loop() {
		n, err := f.as.NewNonce(ctx, f.appID)
		if err != nil {
			b.Fatal(err)
		}
		_ = n
	}
}

func BenchmarkPartTokenSign(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sg, err := token.NewSigner(key)
	if err != nil {
		b.Fatal(err)
	}
	c := &token.Claims{TEE: "sgx", AppID: "app", IssuedAt: 1000, ExpiresAt: 1300, AdvisoryIDs: []string{}}
	for b.Loop() {
		if _, err := sg.Sign(c); err != nil {
			b.Fatal(err)
		}
	}
}

// The signing key is wrapped under the root key and survives root rotation.
func TestSigningKeySurvivesRootRotation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlstore.Open(ctx, filepath.Join(dir, "ppml.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kr, err := rootkey.NewShamir(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Init(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := attestation.Config{Store: st, Root: kr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	a1, err := attestation.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	j1, _ := a1.JWKS(ctx)
	if _, err := kr.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	a2, err := attestation.New(ctx, cfg)
	if err != nil {
		t.Fatalf("after root rotation: %v", err)
	}
	j2, _ := a2.JWKS(ctx)
	if j1.Keys[0].KeyID != j2.Keys[0].KeyID {
		t.Fatal("signing key changed across root rotation")
	}
}
