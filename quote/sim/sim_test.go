package sim

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/policy"
	"github.com/ppml-project/ppml/quote/verify"
)

func newSim(t *testing.T) *SimTEE {
	t.Helper()
	s, err := Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSGXRoundTrip(t *testing.T) {
	s := newSim(t)
	var m Measurements
	copy(m.MREnclave[:], bytes.Repeat([]byte{0xaa}, 32))
	copy(m.MRSigner[:], bytes.Repeat([]byte{0xbb}, 32))
	m.ISVProdID, m.ISVSVN = 7, 3
	copy(m.ReportData[:], "nonce")
	q, err := s.Quote(abi.SGX, m)
	if err != nil {
		t.Fatal(err)
	}
	pq, err := abi.ParseQuote(q)
	if err != nil || pq.Version() != 3 || len(pq.Signed) != 432 {
		t.Fatalf("not an SGX v3 layout: %v", err)
	}
	col, _ := s.Collateral(abi.SGX)
	res, err := verify.Verify(q, col, s.VerifyOptions(time.Now))
	if err != nil {
		t.Fatalf("sim SGX quote does not verify: %v", err)
	}
	if !res.Simulated || res.TEE != "sgx" || *res.TCBStatus != "UpToDate" || !res.CRLChecked || res.Debug {
		t.Fatalf("unexpected result %+v", res)
	}
	if res.MREnclave != strings.Repeat("aa", 32) || res.MRSigner != strings.Repeat("bb", 32) || *res.ISVProdID != 7 || *res.ISVSVN != 3 {
		t.Fatal("measurements not carried")
	}
	if !strings.HasPrefix(res.ReportData, hex.EncodeToString([]byte("nonce"))) {
		t.Fatal("report data not carried")
	}
	// Policy: simulated needs allow_simulated; MRENCLAVE must match.
	p, _ := policy.Parse([]byte(`{"tee":"sgx","mr_enclave":["` + strings.Repeat("aa", 32) + `"]}`))
	if d := p.Evaluate(res); d.Accepted {
		t.Fatal("simulated accepted without allow_simulated")
	}
	p, _ = policy.Parse([]byte(`{"tee":"sgx","mr_enclave":["` + strings.Repeat("aa", 32) + `"],"allow_simulated":true}`))
	if d := p.Evaluate(res); !d.Accepted {
		t.Fatal(d.Reasons)
	}
	p, _ = policy.Parse([]byte(`{"mr_enclave":["` + strings.Repeat("ab", 32) + `"],"allow_simulated":true}`))
	if d := p.Evaluate(res); d.Accepted {
		t.Fatal("other MRENCLAVE accepted")
	}
	// The Intel root does not accept simulated quotes.
	if _, err := verify.Verify(q, col, verify.Options{Now: time.Now}); err == nil {
		t.Fatal("sim quote verified against the Intel root")
	}
	// Tampering is detected.
	for _, off := range []int{120, 450, 600, 960} {
		c := bytes.Clone(q)
		c[off] ^= 1
		if _, err := verify.Verify(c, col, s.VerifyOptions(time.Now)); err == nil {
			t.Fatalf("tampered byte %d verified", off)
		}
	}
	// Debug bit.
	m.Debug = true
	q, _ = s.Quote(abi.SGX, m)
	res, err = verify.Verify(q, col, s.VerifyOptions(time.Now))
	if err != nil || !res.Debug {
		t.Fatalf("debug quote: %v %v", err, res.Debug)
	}
}

func TestTDXRoundTrip(t *testing.T) {
	s := newSim(t)
	var m Measurements
	copy(m.MRTD[:], bytes.Repeat([]byte{0x11}, 48))
	for i := range 4 {
		copy(m.RTMR[i][:], bytes.Repeat([]byte{byte(0x20 + i)}, 48))
	}
	copy(m.ReportData[:], bytes.Repeat([]byte{0x55}, 64))
	q, err := s.Quote(abi.TDX, m)
	if err != nil {
		t.Fatal(err)
	}
	pq, err := abi.ParseQuote(q)
	if err != nil || pq.Version() != 4 || pq.OuterCertDataType != 6 {
		t.Fatalf("not a TDX v4 layout: %v", err)
	}
	col, _ := s.Collateral(abi.TDX)
	res, err := verify.Verify(q, col, s.VerifyOptions(time.Now))
	if err != nil {
		t.Fatalf("sim TDX quote does not verify: %v", err)
	}
	if !res.Simulated || res.TEE != "tdx" || *res.TCBStatus != "UpToDate" || res.Detail.TDXModuleTCBStatus != "UpToDate" {
		t.Fatalf("unexpected result %+v", res)
	}
	if res.MRTD != strings.Repeat("11", 48) || res.RTMR2 != strings.Repeat("22", 48) || res.ReportData != strings.Repeat("55", 64) {
		t.Fatal("measurements not carried")
	}
	// SGX collateral does not verify a TDX quote.
	sc, _ := s.Collateral(abi.SGX)
	if _, err := verify.Verify(q, sc, s.VerifyOptions(time.Now)); err == nil {
		t.Fatal("TDX quote verified with SGX collateral")
	}
	// After collateral expiry.
	later := func() time.Time { return time.Now().AddDate(2, 0, 0) }
	res, err = verify.Verify(q, col, s.VerifyOptions(later))
	if err == nil || !res.CollateralExpired {
		t.Fatal("expired collateral not reported")
	}
	// Another simulation's root does not verify this one's quotes.
	other := newSim(t)
	if _, err := verify.Verify(q, col, other.VerifyOptions(time.Now)); err == nil {
		t.Fatal("quote verified against another simulation root")
	}
}

func TestLoadAndInitErrors(t *testing.T) {
	s := newSim(t)
	if _, err := Init(s.Dir()); err == nil || !strings.Contains(err.Error(), "already holds a simulation") {
		t.Fatalf("re-init: %v", err)
	}
	l, err := Load(s.Dir())
	if err != nil || !bytes.Equal(l.Root().Raw, s.Root().Raw) || !IsSimulationRoot(l.Root()) {
		t.Fatalf("load: %v", err)
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "ppml sim init") {
		t.Fatalf("load empty dir: %v", err)
	}
	if _, err := s.Quote("sev", Measurements{}); err == nil {
		t.Fatal("unknown tee accepted")
	}
}

func TestRevokedPCK(t *testing.T) {
	s := newSim(t)
	caKey, err := readKey(s.Dir(), filePCKCAKey)
	if err != nil {
		t.Fatal(err)
	}
	col, _ := s.Collateral(abi.SGX)
	now := time.Now()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(2), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: s.pckLeaf.SerialNumber, RevocationTime: now.Add(-time.Minute)}},
	}, s.pckCA, caKey)
	if err != nil {
		t.Fatal(err)
	}
	c := *col
	c.PCKCRL = hex.EncodeToString(der)
	q, _ := s.Quote(abi.SGX, Measurements{})
	res, err := verify.Verify(q, &c, s.VerifyOptions(time.Now))
	if err == nil || res.Failure != verify.FailPCKRevoked || res.TCBStatus == nil || *res.TCBStatus != "Revoked" {
		t.Fatalf("revoked PCK: %v %+v", err, res)
	}
	// A PCK CRL signed by the wrong key is refused.
	otherKey, _ := readKey(s.Dir(), fileAttestKey)
	if der, err = x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(3), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}, s.pckCA, otherKey); err != nil {
		t.Fatal(err)
	}
	c.PCKCRL = hex.EncodeToString(der)
	if res, err = verify.Verify(q, &c, s.VerifyOptions(time.Now)); err == nil || res.Failure != verify.FailPCKCRL {
		t.Fatalf("badly signed CRL: %v", err)
	}
}

// TestTDXQuoteV5: TDX quote v5 with TD report 1.0 and 1.5 bodies verifies
// end to end (PCK chain, QE report, quote signature over header, body
// descriptor and body, TCB), and a change to the body descriptor, the
// body or the signature is refused.
func TestTDXQuoteV5(t *testing.T) {
	s := newSim(t)
	var m Measurements
	copy(m.MRTD[:], bytes.Repeat([]byte{0x5d}, 48))
	copy(m.RTMR[3][:], bytes.Repeat([]byte{0x53}, 48))
	copy(m.ReportData[:], "v5 nonce")
	col, _ := s.Collateral(abi.TDX)
	for _, c := range []struct {
		bodyType uint16
		bodySize int
	}{{abi.BodyTypeTD10, abi.TDReport10Size}, {abi.BodyTypeTD15, abi.TDReport15Size}} {
		q, err := s.QuoteV5(m, c.bodyType)
		if err != nil {
			t.Fatal(err)
		}
		pq, err := abi.ParseQuote(q)
		if err != nil || pq.Version() != 5 || pq.BodyType != c.bodyType || len(pq.Signed) != abi.HeaderSize+6+c.bodySize || pq.TDBody.V15 != (c.bodyType == abi.BodyTypeTD15) {
			t.Fatalf("body type %d: not a v5 layout: %v", c.bodyType, err)
		}
		res, err := verify.Verify(q, col, s.VerifyOptions(time.Now))
		if err != nil || !res.Verified {
			t.Fatalf("body type %d: simulated v5 quote does not verify: %v", c.bodyType, err)
		}
		if res.TEE != "tdx" || res.MRTD != strings.Repeat("5d", 48) || res.RTMR3 != strings.Repeat("53", 48) || !strings.HasPrefix(res.ReportData, hex.EncodeToString([]byte("v5 nonce"))) {
			t.Fatalf("body type %d: measurements not carried: %+v", c.bodyType, res)
		}
		sig := len(pq.Signed)
		for off, want := range map[int]string{
			49:          verify.FailFormat,         // body type 2 <-> 3 (declared size no longer matches)
			50:          verify.FailFormat,         // declared body size
			54 + 136:    verify.FailQuoteSignature, // MRTD
			sig - 1:     verify.FailQuoteSignature, // last body byte (report data / MRSERVICETD)
			sig + 4 + 3: verify.FailQuoteSignature, // quote signature, after the 4-byte signature data length
		} {
			bad := bytes.Clone(q)
			bad[off] ^= 0x01
			_, err := verify.Verify(bad, col, s.VerifyOptions(time.Now))
			var ve *verify.Error
			if !errors.As(err, &ve) || ve.Code != want {
				t.Errorf("body type %d, byte %d changed: %v, want %s", c.bodyType, off, err, want)
			}
		}
	}
	if _, err := s.QuoteV5(m, abi.BodyTypeSGX); err == nil {
		t.Fatal("v5 SGX body accepted by QuoteV5")
	}
}

// TestMinTCBEvaluationDataNumber: a verifier with a freshness minimum
// refuses collateral whose TCB info or whose QE identity is below it, each
// on its own.
func TestMinTCBEvaluationDataNumber(t *testing.T) {
	for _, c := range []struct {
		name       string
		ti, qe     int
		min        int
		wantRefuse bool
	}{
		{"both at the minimum", 17, 17, 17, false},
		{"both above", 18, 19, 17, false},
		{"TCB info below", 16, 17, 17, true},
		{"QE identity below", 17, 16, 17, true},
		{"no minimum", 1, 1, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := InitWith(t.TempDir(), Config{TCBInfoEvaluationDataNumber: c.ti, QEIdentityEvaluationDataNumber: c.qe})
			if err != nil {
				t.Fatal(err)
			}
			q, err := s.Quote(abi.SGX, Measurements{})
			if err != nil {
				t.Fatal(err)
			}
			col, _ := s.Collateral(abi.SGX)
			opts := s.VerifyOptions(time.Now)
			opts.MinTCBEvaluationDataNumber = c.min
			_, err = verify.Verify(q, col, opts)
			var ve *verify.Error
			if c.wantRefuse != (err != nil) || c.wantRefuse && (!errors.As(err, &ve) || ve.Code != verify.FailTCBEvaluationDataTooOld) {
				t.Fatalf("TCB info %d, QE identity %d, minimum %d: %v", c.ti, c.qe, c.min, err)
			}
		})
	}
}
