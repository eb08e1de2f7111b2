package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/collateral"
	"github.com/ppml-project/ppml/quote/pck"
)

// testPKI re-roots a real DCAP vector under a test root whose keys the test
// holds: a PCK chain with the real leaf's SGX extension (so the real TCB info
// applies), the QE report re-signed by the new PCK key, and the real TCB info
// and QE identity re-signed by a new TCB signing key. The quote body, QE
// report and attestation key are the real ones. Any piece can then be
// replaced to build an edge case the real vectors lack (a CRL entry, a
// Processor CA, a key on another curve).
type testPKI struct {
	t       *testing.T
	v       *vector
	ext     pkix.Extension // the real leaf's SGX extension
	crlFrom time.Time      // the real CRLs' validity
	crlTo   time.Time

	root, ca, leaf, signer             *x509.Certificate
	rootKey, caKey, leafKey, signerKey crypto.Signer
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// certTemplate is a certificate valid from 2020 to 2040 (the vectors' dates
// lie between), a CA when ca is set.
func certTemplate(cn string, ca bool) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	c := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)), Subject: pkix.Name{CommonName: cn, Organization: []string{"ppml verify test"}},
		NotBefore: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if ca {
		c.IsCA, c.BasicConstraintsValid = true, true
		c.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	return c
}

func issueCert(t *testing.T, tmpl, parent *x509.Certificate, parentKey crypto.Signer, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pemChain(certs ...*x509.Certificate) string {
	var b strings.Builder
	for _, c := range certs {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return b.String()
}

func newTestPKI(t *testing.T, name string) *testPKI {
	v := loadVector(t, name)
	q, err := abi.ParseQuote(v.quote)
	if err != nil {
		t.Fatal(err)
	}
	real, err := collateral.ParseChain(q.PCKChainPEM)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{t: t, v: v}
	for _, e := range real[0].Extensions {
		if e.Id.Equal(pck.OIDSGXExtension) {
			p.ext = e
		}
	}
	p.crlFrom, p.crlTo = v.at.Add(-24*time.Hour), v.at.AddDate(1, 0, 0)
	if v.col.HasCRLs() {
		l := parseCRL(t, v.col.RootCACRL)
		p.crlFrom, p.crlTo = l.ThisUpdate, l.NextUpdate
	}
	rk, ck, sk := newKey(t), newKey(t), newKey(t)
	p.rootKey, p.caKey, p.signerKey = rk, ck, sk
	p.root = issueCert(t, certTemplate("ppml verify test root", true), nil, rk, rk.Public())
	p.ca = issueCert(t, certTemplate(pck.CNPlatformCA, true), p.root, rk, ck.Public())
	p.signer = issueCert(t, certTemplate(CNTCBSigning, false), p.root, rk, sk.Public())
	p.newLeaf(p.ca, p.caKey, newKey(t))
	return p
}

func parseCRL(t *testing.T, s string) *x509.RevocationList {
	der, err := collateral.DecodeCRL(s)
	if err != nil {
		t.Fatal(err)
	}
	l, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// newLeaf issues the PCK certificate (real SGX extension) under ca.
func (p *testPKI) newLeaf(ca *x509.Certificate, caKey, key crypto.Signer) {
	tmpl := certTemplate(pck.CNPCKLeaf, false)
	tmpl.ExtraExtensions = []pkix.Extension{p.ext}
	p.leaf, p.leafKey = issueCert(p.t, tmpl, ca, caKey, key.Public()), key
}

func rawSignP256(t *testing.T, k crypto.Signer, msg []byte) [64]byte {
	var out [64]byte
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return out // an all-zero signature: never verifies
	}
	h := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, ek, h[:])
	if err != nil {
		t.Fatal(err)
	}
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

// quote is the real quote with the test PCK chain and the QE report signed
// by the test PCK key.
func (p *testPKI) quote() *abi.Quote {
	q, err := abi.ParseQuote(p.v.quote)
	if err != nil {
		p.t.Fatal(err)
	}
	q.PCKChainPEM = []byte(pemChain(p.leaf, p.ca, p.root))
	q.QEReportSig = rawSignP256(p.t, p.leafKey, q.RawQEReport)
	return q
}

// crl signs a CRL with the real CRLs' validity listing the given serials.
func (p *testPKI) crl(issuer *x509.Certificate, key crypto.Signer, revoked ...*big.Int) string {
	l := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: p.crlFrom, NextUpdate: p.crlTo}
	for _, s := range revoked {
		l.RevokedCertificateEntries = append(l.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: p.crlFrom})
	}
	der, err := x509.CreateRevocationList(rand.Reader, l, issuer, key)
	if err != nil {
		p.t.Fatal(err)
	}
	return hex.EncodeToString(der)
}

// collateral is the real TCB info and QE identity (each passed through
// edit, when given) signed by the test signer, with empty CRLs of the test
// root and PCK CA.
func (p *testPKI) collateral(edit func(tcbInfo, qeIdentity string) (string, string)) *collateral.Collateral {
	ti, qi := p.v.col.TCBInfo, p.v.col.QEIdentity
	if edit != nil {
		ti, qi = edit(ti, qi)
	}
	tiSig, qiSig := rawSignP256(p.t, p.signerKey, []byte(ti)), rawSignP256(p.t, p.signerKey, []byte(qi))
	chain := pemChain(p.signer, p.root)
	return &collateral.Collateral{
		PCKCRLIssuerChain: pemChain(p.ca, p.root), RootCACRL: p.crl(p.root, p.rootKey), PCKCRL: p.crl(p.ca, p.caKey),
		TCBInfoIssuerChain: chain, TCBInfo: ti, TCBInfoSignature: hex.EncodeToString(tiSig[:]),
		QEIdentityIssuerChain: chain, QEIdentity: qi, QEIdentitySignature: hex.EncodeToString(qiSig[:]),
	}
}

func (p *testPKI) verify(q *abi.Quote, col *collateral.Collateral, opts Options) (*Result, error) {
	opts.Root, opts.Now = p.root, at(p.v.at)
	v, err := New(opts)
	if err != nil {
		p.t.Fatal(err)
	}
	return v.VerifyQuote(q, col)
}

func wantFailMsg(t *testing.T, res *Result, err error, code, msg string) {
	t.Helper()
	wantFail(t, res, err, code)
	if err.Error() != msg {
		t.Fatalf("error %q, want %q", err, msg)
	}
}

// The re-rooted vectors verify as the real ones do, CRLs checked: the base
// of the edge cases below.
func TestRerootedVectors(t *testing.T) {
	for _, name := range []string{"sgx-phala", "tdx-v4-oasis"} {
		p := newTestPKI(t, name)
		res, err := p.verify(p.quote(), p.collateral(nil), Options{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !res.Simulated || !res.CRLChecked || res.TCBStatus == nil || *res.TCBStatus != p.v.expected["tcb_status"] {
			t.Fatalf("%s: simulated %v crl %v status %v", name, res.Simulated, res.CRLChecked, res.TCBStatus)
		}
	}
}

func TestRevoked(t *testing.T) {
	p := newTestPKI(t, "sgx-phala")
	cases := []struct {
		name          string
		root, pckList []*big.Int
		code, msg     string
	}{
		{"PCK certificate", nil, []*big.Int{p.leaf.SerialNumber}, FailPCKRevoked,
			`PCK certificate "Intel SGX PCK Certificate" (serial ` + p.leaf.SerialNumber.Text(16) + `) is revoked`},
		{"TCB signing certificate", []*big.Int{p.signer.SerialNumber}, nil, FailPCKRevoked,
			`TCB signing certificate "Intel SGX TCB Signing" (serial ` + p.signer.SerialNumber.Text(16) + `) is revoked`},
		{"PCK CA (the PCK CRL issuer)", []*big.Int{p.ca.SerialNumber}, nil, FailPCKRevoked,
			`PCK CRL issuer "Intel SGX PCK Platform CA" is revoked by the root CA CRL`},
		{"another serial", []*big.Int{big.NewInt(7)}, []*big.Int{big.NewInt(7)}, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			col := p.collateral(nil)
			col.RootCACRL = p.crl(p.root, p.rootKey, c.root...)
			col.PCKCRL = p.crl(p.ca, p.caKey, c.pckList...)
			res, err := p.verify(p.quote(), col, Options{})
			if c.code == "" {
				if err != nil {
					t.Fatalf("unrelated CRL entries: %v", err)
				}
				return
			}
			wantFailMsg(t, res, err, c.code, c.msg)
		})
	}
}

// A PCK chain through the Processor CA, with its CRL, verifies; a CRL issuer
// that is neither PCK CA is refused.
func TestPCKCRLIssuerName(t *testing.T) {
	p := newTestPKI(t, "sgx-phala")
	pk := newKey(t)
	p.ca = issueCert(t, certTemplate(pck.CNProcessorCA, true), p.root, p.rootKey, pk.Public())
	p.caKey = pk
	p.newLeaf(p.ca, p.caKey, newKey(t))
	res, err := p.verify(p.quote(), p.collateral(nil), Options{})
	if err != nil || res.Detail.PCK.CAType != pck.CAProcessor || !res.CRLChecked {
		t.Fatalf("Processor CA chain: %v (pck %+v)", err, res.Detail.PCK)
	}

	q := p.quote()
	ok := newKey(t)
	p.ca = issueCert(t, certTemplate("Intel SGX PCK Other CA", true), p.root, p.rootKey, ok.Public())
	p.caKey = ok
	res, err = p.verify(q, p.collateral(nil), Options{})
	wantFailMsg(t, res, err, FailPCKCRL, `pck_crl_issuer_chain: issuer common name "Intel SGX PCK Other CA" is neither "Intel SGX PCK Platform CA" nor "Intel SGX PCK Processor CA"`)
}

func TestPCKKeyNotP256(t *testing.T) {
	p := newTestPKI(t, "sgx-phala")
	k384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.newLeaf(p.ca, p.caKey, k384)
	res, err := p.verify(p.quote(), p.collateral(nil), Options{})
	wantFailMsg(t, res, err, FailPCKChain, "PCK certificate key is not ECDSA P-256")
}

// The TCB info signer's key must be ECDSA P-256; its certificate's own
// signature (by the root) is fine.
func TestTCBSignerKeyNotP256(t *testing.T) {
	p := newTestPKI(t, "sgx-phala")
	_, ek, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.signer = issueCert(t, certTemplate(CNTCBSigning, false), p.root, p.rootKey, ek.Public())
	res, err := p.verify(p.quote(), p.collateral(nil), Options{})
	wantFailMsg(t, res, err, FailTCBInfoSignature, "tcb_info_signature does not verify over the tcb_info bytes with the TCB signing key")
}

// An issuer that is a certificate but not a CA (basic constraints present,
// cA false) is refused by name, before its signature is checked.
func TestIssuerNotCA(t *testing.T) {
	p := newTestPKI(t, "sgx-phala")
	tmpl := certTemplate(pck.CNPlatformCA, false)
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	tmpl.SubjectKeyId = []byte{1, 2, 3, 4} // needed by x509 to sign the CRL
	p.ca = issueCert(t, tmpl, p.root, p.rootKey, p.caKey.Public())
	p.newLeaf(p.ca, p.caKey, newKey(t))
	res, err := p.verify(p.quote(), p.collateral(nil), Options{})
	wantFailMsg(t, res, err, FailPCKChain, `PCK certificate "Intel SGX PCK Certificate": issuer "Intel SGX PCK Platform CA" is not a CA`)
}

func TestMinTCBEvaluationDataNumber(t *testing.T) {
	p := newTestPKI(t, "sgx-phala")
	qe16 := p.collateral(func(ti, qi string) (string, string) {
		return ti, strings.Replace(qi, `"tcbEvaluationDataNumber":17`, `"tcbEvaluationDataNumber":16`, 1)
	})
	ti16 := p.collateral(func(ti, qi string) (string, string) {
		return strings.Replace(ti, `"tcbEvaluationDataNumber":17`, `"tcbEvaluationDataNumber":16`, 1), qi
	})
	cases := []struct {
		name string
		min  int
		col  *collateral.Collateral
		msg  string
	}{
		{"both 17, minimum 17", 17, p.collateral(nil), ""},
		{"both 17, minimum 18", 18, p.collateral(nil), "tcbEvaluationDataNumber 17 (TCB info) / 17 (QE identity) is below the required minimum 18"},
		{"QE identity 16, minimum 17", 17, qe16, "tcbEvaluationDataNumber 17 (TCB info) / 16 (QE identity) is below the required minimum 17"},
		{"TCB info 16, minimum 17", 17, ti16, "tcbEvaluationDataNumber 16 (TCB info) / 17 (QE identity) is below the required minimum 17"},
		{"QE identity 16, no minimum", 0, qe16, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := p.verify(p.quote(), c.col, Options{MinTCBEvaluationDataNumber: c.min})
			if c.msg == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantFailMsg(t, res, err, FailTCBEvaluationDataTooOld, c.msg)
		})
	}
}

// verifyRawSig takes exactly r||s: a valid signature with a byte appended
// is refused (collateral.Validate refuses it too, before).
func TestVerifyRawSigLength(t *testing.T) {
	p := newTestPKI(t, "sgx-phala")
	msg := []byte("tcb info")
	sig := rawSignP256(t, p.signerKey, msg)
	if !verifyRawSig(p.signer, msg, hex.EncodeToString(sig[:])) {
		t.Fatal("valid signature refused")
	}
	if verifyRawSig(p.signer, msg, hex.EncodeToString(sig[:])+"00") {
		t.Fatal("65-byte signature accepted")
	}
}

// Chain reads the facts of a chain (the vector's PCK CA is the Processor
// CA) before any check, also of a chain without its root; a chain of fewer
// than two certificates has none.
func TestChainFacts(t *testing.T) {
	v := loadVector(t, "sgx-phala")
	q, err := abi.ParseQuote(v.quote)
	if err != nil {
		t.Fatal(err)
	}
	ver, _ := New(Options{Now: at(v.at)})
	certs, _ := collateral.ParseChain(q.PCKChainPEM)
	for n, chain := range map[int][]byte{3: q.PCKChainPEM, 2: []byte(pemChain(certs[0], certs[1]))} {
		c, err := ver.Chain(chain)
		if err != nil || c.FMSPC != v.expected["fmspc"] || c.CAType != pck.CAProcessor || len(c.Certs) != n || c.Ext == nil {
			t.Fatalf("%d certificates: %v %+v", n, err, c)
		}
	}
	_, err = ver.Chain([]byte(pemChain(certs[0])))
	var ve *Error
	if !errors.As(err, &ve) || ve.Code != FailPCKChain || ve.Msg != "PCK certificate chain has 1 certificates, want 3" {
		t.Fatalf("one certificate: %v", err)
	}
}

// VerifyQuoteLookup asks for collateral with the verified chain's facts,
// only once the quote's own checks passed, and returns the lookup's error
// as is.
func TestVerifyQuoteLookup(t *testing.T) {
	v := loadVector(t, "sgx-phala")
	ver, _ := New(Options{Now: at(v.at)})
	q, _ := abi.ParseQuote(v.quote)
	var asked *Chain
	res, err := ver.VerifyQuoteLookup(q, func(c *Chain) (*collateral.Collateral, error) { asked = c; return v.col, nil })
	if err != nil || !res.Verified || asked == nil || asked.FMSPC != v.expected["fmspc"] {
		t.Fatalf("lookup: %v, asked %+v", err, asked)
	}
	lookupErr := errors.New("no collateral for this FMSPC")
	res, err = ver.VerifyQuoteLookup(q, func(*Chain) (*collateral.Collateral, error) { return nil, lookupErr })
	if err != lookupErr || res.Verified || !res.Detail.Checks["quote_signature"] {
		t.Fatalf("lookup error: %v %+v", err, res)
	}
	bad, _ := abi.ParseQuote(flip(v.quote, 120))
	res, err = ver.VerifyQuoteLookup(bad, func(*Chain) (*collateral.Collateral, error) {
		t.Fatal("lookup called for a quote whose signature does not verify")
		return nil, nil
	})
	wantFail(t, res, err, FailQuoteSignature)
}

// RejectTrailingBytes refuses trailing bytes only: a quote without them verifies.
func TestRejectTrailingBytesCleanQuote(t *testing.T) {
	v := loadVector(t, "sgx-phala")
	if res, err := Verify(v.quote, v.col, Options{Now: at(v.at), RejectTrailingBytes: true}); err != nil || !res.Verified {
		t.Fatalf("quote without trailing bytes: %v", err)
	}
}

// The PCK CRL must come from the PCK certificate's own issuer: a CA of the
// same name with another key is refused; a re-issued certificate of the
// same CA (same name and key, another serial) is the same issuer.
func TestPCKCRLIssuerIsPCKIssuer(t *testing.T) {
	p := newTestPKI(t, "sgx-phala")
	q := p.quote()
	realCA, realKey := p.ca, p.caKey
	other := newKey(t)
	p.ca, p.caKey = issueCert(t, certTemplate(pck.CNPlatformCA, true), p.root, p.rootKey, other.Public()), other
	res, err := p.verify(q, p.collateral(nil), Options{})
	wantFailMsg(t, res, err, FailPCKCRL, `PCK CRL issuer "Intel SGX PCK Platform CA" is not the issuer of the PCK certificate ("Intel SGX PCK Platform CA")`)

	p.ca, p.caKey = issueCert(t, certTemplate(pck.CNPlatformCA, true), p.root, p.rootKey, realKey.Public()), realKey
	if p.ca.SerialNumber.Cmp(realCA.SerialNumber) == 0 {
		t.Fatal("re-issued CA has the same serial")
	}
	if res, err := p.verify(q, p.collateral(nil), Options{}); err != nil || !res.CRLChecked {
		t.Fatalf("re-issued PCK CA as CRL issuer: %v", err)
	}
}

// Inspect reads measurements and PCK facts without verifying; an
// unparsable quote or an unreadable chain is an error.
func TestInspect(t *testing.T) {
	v := loadVector(t, "sgx-phala")
	res, err := Inspect(v.quote)
	if err != nil || res.Verified || res.FMSPC != v.expected["fmspc"] || res.MREnclave != v.expected["mr_enclave"] {
		t.Fatalf("inspect: %v %+v", err, res)
	}
	if _, err := Inspect(v.quote[:100]); err == nil {
		t.Fatal("truncated quote inspected")
	}
	q, _ := abi.ParseQuote(v.quote)
	certs, _ := collateral.ParseChain(q.PCKChainPEM)
	q.PCKChainPEM = []byte(pemChain(certs[0]))
	res, err = InspectQuote(q)
	var ve *Error
	if !errors.As(err, &ve) || ve.Code != FailPCKChain || res.MREnclave != v.expected["mr_enclave"] {
		t.Fatalf("one-certificate chain: %v, measurements %q", err, res.MREnclave)
	}
}
