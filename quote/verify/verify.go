// Package verify verifies Intel DCAP ECDSA quotes (SGX v3, TDX v4/v5)
// against collateral, following dcap-quote-verification.md §5–§7: PCK chain
// to the pinned root, CRLs, QE report signature and attestation-key
// binding, quote signature, TCB info and QE identity signatures and
// chains, TCB level evaluation and status combination, and collateral
// expiry. Every time check uses the injected clock.
package verify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/ppml-project/ppml/wire/measurement"

	"crypto/x509"

	"github.com/ppml-project/ppml/internal/boundedcache"
	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/collateral"
	"github.com/ppml-project/ppml/quote/pck"
)

//go:embed intel_sgx_root_ca.pem
var intelRootPEM []byte

var intelRoot *x509.Certificate

func init() {
	certs, err := collateral.ParseChain(intelRootPEM)
	if err != nil || len(certs) != 1 {
		panic("verify: embedded Intel SGX Root CA is unreadable")
	}
	intelRoot = certs[0]
}

// IntelRootCA returns the pinned Intel SGX Root CA certificate.
func IntelRootCA() *x509.Certificate { return intelRoot }

// IntelRootCAPEM returns the PEM of the pinned Intel SGX Root CA.
func IntelRootCAPEM() []byte { return append([]byte(nil), intelRootPEM...) }

// CNTCBSigning is the common name of the TCB info and QE identity signer
// (the PCK chain's names are in package pck).
const CNTCBSigning = "Intel SGX TCB Signing"

const maxCacheEntries = 512

// Failure codes (see testdata/dcap/README.md).
const (
	FailFormat                  = "format"
	FailPCKChain                = "pck_chain"
	FailPCKCertTime             = "pck_cert_time"
	FailQEReportSignature       = "qe_report_signature"
	FailQEReportData            = "qe_report_data"
	FailQuoteSignature          = "quote_signature"
	FailPCKCRL                  = "pck_crl"
	FailPCKRevoked              = "pck_revoked"
	FailTCBInfoChain            = "tcb_info_chain"
	FailTCBInfoCertTime         = "tcb_info_cert_time"
	FailTCBInfoSignature        = "tcb_info_signature"
	FailQEIdentityChain         = "qe_identity_chain"
	FailQEIdentitySignature     = "qe_identity_signature"
	FailTCBInfoMismatch         = "tcb_info_mismatch"
	FailQEIdentityMismatch      = "qe_identity_mismatch"
	FailCollateralNotYetValid   = "collateral_not_yet_valid"
	FailCollateralExpired       = "collateral_expired"
	FailTCBNotSupported         = "tcb_not_supported"
	FailTDXModuleMismatch       = "tdx_module_mismatch"
	FailNoCollateral            = "no_collateral"
	FailTCBEvaluationDataTooOld = "tcb_evaluation_data_number"
)

// Error is returned when verification fails; Code is one of the Fail*
// constants.
type Error struct {
	Code string
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

func fail(code, format string, a ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, a...)}
}

// Options configure a Verifier.
type Options struct {
	// Root is the trust anchor. Nil means the pinned Intel SGX Root CA.
	// Any other root (e.g. the simulation root) makes every result carry
	// Simulated = true.
	Root *x509.Certificate
	// Now is the trusted clock. It is required: the verifier never reads
	// the host clock on its own.
	Now func() time.Time
	// RejectTrailingBytes refuses quotes with bytes after the signature
	// data (default: tolerated and reported in detail.trailing_bytes).
	RejectTrailingBytes bool
	// MinTCBEvaluationDataNumber, when > 0, refuses TCB info and QE
	// identity with a lower tcbEvaluationDataNumber.
	MinTCBEvaluationDataNumber int
}

// Verifier verifies quotes. It caches the time-independent checks of each
// collateral (keyed by its hash) and of each PCK chain, so repeated
// verifications cost two ECDSA verifications plus TCB evaluation. Safe for
// concurrent use.
type Verifier struct {
	opts      Options
	root      *x509.Certificate
	simulated bool

	cols   *boundedcache.Map[[32]byte, *prepared]
	chains *boundedcache.Map[[32]byte, *pckChain]
}

// New returns a Verifier.
func New(opts Options) (*Verifier, error) {
	if opts.Now == nil {
		return nil, errors.New("verify: Options.Now is nil: pass a trusted clock explicitly (e.g. time.Now, or a fixed time)")
	}
	v := &Verifier{opts: opts, root: opts.Root, cols: boundedcache.New[[32]byte, *prepared](maxCacheEntries), chains: boundedcache.New[[32]byte, *pckChain](maxCacheEntries)}
	if v.root == nil {
		v.root = intelRoot
	}
	v.simulated = !bytes.Equal(v.root.Raw, intelRoot.Raw)
	return v, nil
}

// Simulated reports whether the trust anchor is not the Intel SGX Root CA.
func (v *Verifier) Simulated() bool { return v.simulated }

// Verify is a one-shot verification with a fresh Verifier (no cache reuse).
func Verify(quote []byte, col *collateral.Collateral, opts Options) (*Result, error) {
	v, err := New(opts)
	if err != nil {
		return nil, err
	}
	return v.Verify(quote, col)
}

// Result is the verification verdict and the quote's measurements. Its JSON
// form is the layout of testdata/dcap/*/expected.json plus error, failure
// and simulated.
type Result struct {
	TEE                 string     `json:"tee"`
	Verified            bool       `json:"verified"`
	Simulated           bool       `json:"simulated"`
	TCBStatus           *string    `json:"tcb_status"`
	AdvisoryIDs         []string   `json:"advisory_ids"`
	CRLChecked          bool       `json:"crl_checked"`
	CollateralExpired   bool       `json:"collateral_expired"`
	CollateralExpiresAt *time.Time `json:"collateral_expires_at,omitempty"`
	Failure             string     `json:"failure,omitempty"`
	Error               string     `json:"error,omitempty"`
	FMSPC               string     `json:"fmspc,omitempty"`

	// The measurements (SGX: mr_enclave, mr_signer, isv_prod_id, isv_svn;
	// TDX: mr_td, rtmr0..3, ...) and report_data.
	measurement.Measurements
	TEETCBSVN string `json:"tee_tcb_svn,omitempty"` // TDX
	Debug     bool   `json:"debug"`

	Detail Detail `json:"detail"`
}

// Detail carries diagnostics.
type Detail struct {
	QuoteVersion         int             `json:"quote_version,omitempty"`
	TrailingBytes        int             `json:"trailing_bytes"`
	Checks               map[string]bool `json:"checks"`
	PlatformTCBStatus    string          `json:"platform_tcb_status,omitempty"`
	PlatformAdvisoryIDs  []string        `json:"platform_advisory_ids,omitempty"`
	SGXTCBLevelStatus    string          `json:"sgx_tcb_level_status,omitempty"`
	TDXModuleTCBStatus   string          `json:"tdx_module_tcb_status,omitempty"`
	TDXModuleAdvisoryIDs []string        `json:"tdx_module_advisory_ids,omitempty"`
	QETCBStatus          string          `json:"qe_tcb_status,omitempty"`
	QEAdvisoryIDs        []string        `json:"qe_advisory_ids,omitempty"`
	MatchedTCBDate       *time.Time      `json:"matched_tcb_date,omitempty"`
	TCBEvaluationDataNum int             `json:"tcb_evaluation_data_number,omitempty"`
	CollateralNotBefore  *time.Time      `json:"collateral_not_before,omitempty"`
	TDRelaunchCheck      string          `json:"td_relaunch_check,omitempty"`
	PCK                  *PCKDetail      `json:"pck,omitempty"`
	VerificationTime     time.Time       `json:"verification_time"`
}

// PCKDetail describes the PCK certificate.
type PCKDetail struct {
	FMSPC     string    `json:"fmspc"`
	PCEID     string    `json:"pceid"`
	PCESVN    uint16    `json:"pcesvn"`
	CPUSVN    string    `json:"cpusvn"`
	CompSVN   []int     `json:"comp_svn"`
	SGXType   int       `json:"sgx_type"`
	IssuerCN  string    `json:"issuer_cn"`
	CAType    string    `json:"ca_type"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

func hx(b []byte) string { return hex.EncodeToString(b) }

func (r *Result) setFailure(e *Error) {
	r.Verified = false
	if r.Failure == "" {
		r.Failure = e.Code
		r.Error = e.Msg
	}
}

func (r *Result) fillMeasurements(q *abi.Quote) {
	r.TEE = string(q.TEE)
	r.Detail.QuoteVersion = int(q.Header.Version)
	r.Detail.TrailingBytes = q.TrailingBytes
	if b := q.SGXBody; b != nil {
		r.MREnclave = hx(b.MREnclave[:])
		r.MRSigner = hx(b.MRSigner[:])
		p, s := b.ISVProdID, b.ISVSVN
		r.ISVProdID, r.ISVSVN = &p, &s
		r.Debug = b.Debug()
		r.ReportData = hx(b.ReportData[:])
	}
	if b := q.TDBody; b != nil {
		r.MRTD = hx(b.MRTD[:])
		r.RTMR0, r.RTMR1, r.RTMR2, r.RTMR3 = hx(b.RTMR[0][:]), hx(b.RTMR[1][:]), hx(b.RTMR[2][:]), hx(b.RTMR[3][:])
		r.TDAttributes = hx(b.TDAttributes[:])
		r.TEETCBSVN = hx(b.TEETCBSVN[:])
		r.MRSeam = hx(b.MRSeam[:])
		r.MRConfigID = hx(b.MRConfigID[:])
		r.MROwner = hx(b.MROwner[:])
		r.MROwnerConfig = hx(b.MROwnerConfig[:])
		r.Debug = b.Debug()
		r.ReportData = hx(b.ReportData[:])
		if b.V15 {
			r.Detail.TDRelaunchCheck = "not performed (TD report 1.5 evaluated with the TD 1.0 rules)"
		}
	}
}

// window tracks the collateral validity window.
type window struct {
	notBefore, notAfter time.Time
	what                string // what expires first
}

func (w *window) add(nb, na time.Time, what string) {
	if w.notBefore.IsZero() || nb.After(w.notBefore) {
		w.notBefore = nb
	}
	if w.notAfter.IsZero() || na.Before(w.notAfter) {
		w.notAfter = na
		w.what = what
	}
}

// Verify parses a raw quote and verifies it (VerifyQuote); a quote that
// does not parse fails with FailFormat.
func (v *Verifier) Verify(raw []byte, col *collateral.Collateral) (*Result, error) {
	q, err := abi.ParseQuote(raw)
	if err != nil {
		res := v.newResult()
		res.Detail.VerificationTime = v.opts.Now().UTC()
		e := fail(FailFormat, "%v", err)
		res.setFailure(e)
		return res, e
	}
	return v.VerifyQuote(q, col)
}

func (v *Verifier) newResult() *Result {
	res := &Result{AdvisoryIDs: []string{}, Simulated: v.simulated}
	res.Detail.Checks = map[string]bool{}
	return res
}

// VerifyQuote verifies a parsed quote against collateral at the time given
// by Options.Now. The Result is always non-nil, with the quote's
// measurements; the error is non-nil exactly when Result.Verified is false,
// and is an *Error.
func (v *Verifier) VerifyQuote(q *abi.Quote, col *collateral.Collateral) (*Result, error) {
	t := v.opts.Now()
	res := v.newResult()
	res.Detail.VerificationTime = t.UTC()
	e := v.verify(q, col, t, res)
	if e != nil {
		res.setFailure(e)
		return res, e
	}
	res.Verified = true
	return res, nil
}

// VerifyQuoteLookup is VerifyQuote with the collateral obtained from lookup,
// which is called only once the checks that need no collateral have
// passed: the PCK chain up to the trust anchor (and its validity dates),
// the QE report signature by the PCK key, the attestation key's binding in
// the QE report and the quote signature by that key. A forged quote or PCK
// chain (say, with a made-up FMSPC) thus costs no lookup, so no PCCS
// fetch. lookup gets the verified chain's facts; its error is returned as
// is, with the Result of the checks done so far.
func (v *Verifier) VerifyQuoteLookup(q *abi.Quote, lookup func(*Chain) (*collateral.Collateral, error)) (*Result, error) {
	t := v.opts.Now()
	res := v.newResult()
	res.Detail.VerificationTime = t.UTC()
	pc, win, e := v.ownChecks(q, t, res)
	if e != nil {
		res.setFailure(e)
		return res, e
	}
	col, err := lookup(pc.facts)
	if err != nil {
		return res, err
	}
	if e := v.againstCollateral(q, pc, win, col, t, res); e != nil {
		res.setFailure(e)
		return res, e
	}
	res.Verified = true
	return res, nil
}

func (v *Verifier) verify(q *abi.Quote, col *collateral.Collateral, t time.Time, res *Result) *Error {
	pc, win, e := v.ownChecks(q, t, res)
	if e != nil {
		return e
	}
	return v.againstCollateral(q, pc, win, col, t, res)
}

// ownChecks are the checks of a quote that need no collateral: format, the
// PCK chain to the trust anchor and its dates, and the quote's signatures.
func (v *Verifier) ownChecks(q *abi.Quote, t time.Time, res *Result) (*pckChain, *window, *Error) {
	res.fillMeasurements(q)
	if v.opts.RejectTrailingBytes && q.TrailingBytes > 0 {
		return nil, nil, fail(FailFormat, "quote has %d trailing bytes after the signature data and trailing bytes are not allowed", q.TrailingBytes)
	}

	// PCK chain (signatures cached per chain bytes).
	pc, e := v.pckChainFor(q.PCKChainPEM)
	if e != nil {
		return nil, nil, e
	}
	res.Detail.Checks["pck_chain_signatures"] = true
	res.FMSPC = hx(pc.ext.FMSPC[:])
	res.Detail.PCK = pc.detail()
	win := &window{}
	for i, c := range pc.certs {
		if t.Before(c.NotBefore) {
			return nil, nil, fail(FailPCKCertTime, "PCK chain certificate %d (%q) is not valid before %s", i, c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339))
		}
		win.add(c.NotBefore, c.NotAfter, "PCK chain certificate "+c.Subject.CommonName)
	}

	// QE report signature, attestation-key binding, quote signature.
	if e := checkQuoteSignatures(q, pc.leafKey, res.Detail.Checks); e != nil {
		return nil, nil, e
	}
	return pc, win, nil
}

// againstCollateral are the checks of a quote that passed ownChecks against
// collateral: its signatures and dates, revocation, TCB evaluation.
func (v *Verifier) againstCollateral(q *abi.Quote, pc *pckChain, win *window, col *collateral.Collateral, t time.Time, res *Result) *Error {
	if col == nil {
		return fail(FailNoCollateral, "no collateral supplied: pass a collateral file, a collateral directory or a PCCS URL")
	}
	// Collateral (signatures cached per collateral hash).
	pcol, e := v.prepare(col)
	if e != nil {
		return e
	}
	res.Detail.Checks["tcb_info_chain_signatures"] = true
	res.Detail.Checks["tcb_info_signature"] = true
	res.Detail.Checks["qe_identity_chain_signatures"] = true
	res.Detail.Checks["qe_identity_signature"] = true
	for _, s := range []struct {
		c    *x509.Certificate
		code string
		what string
	}{{pcol.tcbSigner, FailTCBInfoCertTime, "TCB info signing certificate"}, {pcol.qeSigner, FailTCBInfoCertTime, "QE identity signing certificate"}} {
		if t.Before(s.c.NotBefore) {
			return fail(s.code, "%s is not valid before %s", s.what, s.c.NotBefore.UTC().Format(time.RFC3339))
		}
		win.add(s.c.NotBefore, s.c.NotAfter, s.what)
	}

	// Revocation.
	if pcol.hasCRL {
		if !sameCert(pcol.pckCRLIssuer, pc.certs[1]) {
			return fail(FailPCKCRL, "PCK CRL issuer %q is not the issuer of the PCK certificate (%q)", pcol.pckCRLIssuer.Subject.CommonName, pc.certs[1].Subject.CommonName)
		}
		for _, crl := range []struct {
			l    *x509.RevocationList
			what string
		}{{pcol.rootCRL, "root CA CRL"}, {pcol.pckCRL, "PCK CRL"}} {
			if t.Before(crl.l.ThisUpdate) {
				return fail(FailCollateralNotYetValid, "%s is not valid before %s", crl.what, crl.l.ThisUpdate.UTC().Format(time.RFC3339))
			}
			win.add(crl.l.ThisUpdate, crl.l.NextUpdate, crl.what)
		}
		c := pcol.pckCRLIssuer
		win.add(c.NotBefore, c.NotAfter, "PCK CRL issuer certificate")
		res.CRLChecked = true
		revoked := func(what string, c *x509.Certificate, list map[string]bool) *Error {
			if list[c.SerialNumber.String()] {
				s := "Revoked"
				res.TCBStatus = &s
				return fail(FailPCKRevoked, "%s %q (serial %x) is revoked", what, c.Subject.CommonName, c.SerialNumber)
			}
			return nil
		}
		if e := revoked("PCK CA certificate", pc.certs[1], pcol.rootRevoked); e != nil {
			return e
		}
		if e := revoked("TCB signing certificate", pcol.tcbSigner, pcol.rootRevoked); e != nil {
			return e
		}
		if e := revoked("QE identity signing certificate", pcol.qeSigner, pcol.rootRevoked); e != nil {
			return e
		}
		if e := revoked("PCK certificate", pc.certs[0], pcol.pckRevoked); e != nil {
			return e
		}
	}

	// TCB info and QE identity contents.
	ti, qi := pcol.tcbInfo, pcol.qeID
	wantTI, wantQE := "SGX", "QE"
	if q.TEE == abi.TDX {
		wantTI, wantQE = "TDX", "TD_QE"
	}
	if ti.ID != wantTI {
		return fail(FailTCBInfoMismatch, "TCB info id is %q, want %q for a %s quote", ti.ID, wantTI, q.TEE)
	}
	if ti.Version != 3 {
		return fail(FailTCBInfoMismatch, "TCB info version %d not supported (want 3)", ti.Version)
	}
	if !bytes.Equal(ti.FMSPC, pc.ext.FMSPC[:]) {
		return fail(FailTCBInfoMismatch, "TCB info is for FMSPC %s, the PCK certificate has FMSPC %s", hx(ti.FMSPC), hx(pc.ext.FMSPC[:]))
	}
	if !bytes.Equal(ti.PCEID, pc.ext.PCEID[:]) {
		return fail(FailTCBInfoMismatch, "TCB info is for PCE-ID %s, the PCK certificate has PCE-ID %s", hx(ti.PCEID), hx(pc.ext.PCEID[:]))
	}
	if qi.ID != wantQE {
		return fail(FailQEIdentityMismatch, "QE identity id is %q, want %q for a %s quote", qi.ID, wantQE, q.TEE)
	}
	if qi.Version != 2 {
		return fail(FailQEIdentityMismatch, "QE identity version %d not supported (want 2)", qi.Version)
	}
	if m := v.opts.MinTCBEvaluationDataNumber; m > 0 {
		if ti.TCBEvaluationDataNumber < m || qi.TCBEvaluationDataNumber < m {
			return fail(FailTCBEvaluationDataTooOld, "tcbEvaluationDataNumber %d (TCB info) / %d (QE identity) is below the required minimum %d", ti.TCBEvaluationDataNumber, qi.TCBEvaluationDataNumber, m)
		}
	}
	res.Detail.TCBEvaluationDataNum = ti.TCBEvaluationDataNumber
	for _, d := range []struct {
		issue, next time.Time
		what        string
	}{{ti.IssueDate, ti.NextUpdate, "TCB info"}, {qi.IssueDate, qi.NextUpdate, "QE identity"}} {
		if t.Before(d.issue) {
			return fail(FailCollateralNotYetValid, "%s is not valid before its issueDate %s", d.what, d.issue.UTC().Format(time.RFC3339))
		}
		win.add(d.issue, d.next, d.what)
	}
	na, nb := win.notAfter.UTC(), win.notBefore.UTC()
	res.CollateralExpiresAt, res.Detail.CollateralNotBefore = &na, &nb
	var expired *Error
	if !t.Before(win.notAfter) {
		res.CollateralExpired = true
		expired = fail(FailCollateralExpired, "collateral expired at %s (%s); verification time is %s: refresh the collateral", na.Format(time.RFC3339), win.what, t.UTC().Format(time.RFC3339))
	}

	// TCB evaluation.
	ev, e := evaluate(q, pc.ext, ti, qi)
	ev.fill(res)
	if e != nil {
		return e
	}
	return expired
}

func sameCert(a, b *x509.Certificate) bool {
	if bytes.Equal(a.Raw, b.Raw) {
		return true
	}
	return bytes.Equal(a.RawSubject, b.RawSubject) && bytes.Equal(a.RawSubjectPublicKeyInfo, b.RawSubjectPublicKeyInfo)
}

func rawSig(b []byte) (r, s *big.Int) {
	return new(big.Int).SetBytes(b[:32]), new(big.Int).SetBytes(b[32:64])
}

// checkQuoteSignatures verifies the QE report signature with the PCK key,
// the attestation-key binding in the QE report data, and the quote
// signature with the attestation key.
func checkQuoteSignatures(q *abi.Quote, pckKey *ecdsa.PublicKey, checks map[string]bool) *Error {
	h := sha256.Sum256(q.RawQEReport)
	r, s := rawSig(q.QEReportSig[:])
	if !ecdsa.Verify(pckKey, h[:], r, s) {
		checks["qe_report_signature"] = false
		return fail(FailQEReportSignature, "QE report signature does not verify with the PCK certificate key")
	}
	checks["qe_report_signature"] = true
	bh := sha256.New()
	bh.Write(q.AttestKey[:])
	bh.Write(q.QEAuthData)
	want := bh.Sum(nil)
	rd := q.QEReport.ReportData
	if !bytes.Equal(rd[:32], want) || !bytes.Equal(rd[32:], make([]byte, 32)) {
		checks["qe_report_data"] = false
		return fail(FailQEReportData, "QE report data %s does not bind the attestation key: want SHA-256(attestation key || QE auth data) = %s followed by 32 zero bytes", hx(rd[:]), hx(want))
	}
	checks["qe_report_data"] = true
	pt := make([]byte, 65)
	pt[0] = 4
	copy(pt[1:], q.AttestKey[:])
	ak, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pt)
	if err != nil {
		checks["quote_signature"] = false
		return fail(FailQuoteSignature, "attestation key is not a valid P-256 point: %v", err)
	}
	qh := sha256.Sum256(q.Signed)
	r, s = rawSig(q.Signature[:])
	if !ecdsa.Verify(ak, qh[:], r, s) {
		checks["quote_signature"] = false
		return fail(FailQuoteSignature, "quote signature over header and body does not verify with the attestation key")
	}
	checks["quote_signature"] = true
	return nil
}

// Chain is what a quote's PCK certificate chain says before anything is
// verified: enough to choose the trust anchor and the collateral.
type Chain struct {
	Certs  []*x509.Certificate // as sent: leaf, PCK CA, root
	Ext    *pck.Extension      // the leaf's SGX extension
	FMSPC  string              // lower-case hex
	CAType string              // pck.CAPlatform or pck.CAProcessor; "" when the PCK CA is neither
}

// chainParts are the decoded parts of a PCK chain; each may fail on its own,
// so the checks can report the first problem in their own order.
type chainParts struct {
	certs    []*x509.Certificate
	certsErr error
	ext      *pck.Extension
	extErr   error
	caType   string
}

func decodeChain(pemChain []byte) *chainParts {
	p := &chainParts{}
	if p.certs, p.certsErr = collateral.ParseChain(pemChain); p.certsErr != nil || len(p.certs) < 2 {
		return p
	}
	p.ext, p.extErr = pck.FromCertificate(p.certs[0])
	p.caType, _ = pck.CAType(p.certs[1].Subject.CommonName)
	return p
}

// chain returns the facts of the parts, or why they are unreadable
// (unknownCA: also when the PCK CA is neither the Platform nor the
// Processor CA). The Chain holds the certificates whenever they decode.
func (p *chainParts) chain(unknownCA bool) (*Chain, *Error) {
	if p.certsErr != nil {
		return nil, fail(FailPCKChain, "PCK certificate chain: %v", p.certsErr)
	}
	c := &Chain{Certs: p.certs}
	switch {
	case len(p.certs) < 2:
		return c, fail(FailPCKChain, "PCK certificate chain has %d certificates, want 3", len(p.certs))
	case p.extErr != nil:
		return c, fail(FailPCKChain, "%v", p.extErr)
	case unknownCA && p.caType == "":
		return c, unknownCAError(p.certs[1])
	}
	c.Ext, c.FMSPC, c.CAType = p.ext, hx(p.ext.FMSPC[:]), p.caType
	return c, nil
}

func unknownCAError(inter *x509.Certificate) *Error {
	return fail(FailPCKChain, "PCK CA common name %q is neither %q nor %q", inter.Subject.CommonName, pck.CNPlatformCA, pck.CNProcessorCA)
}

// Chain returns the facts of a PCK chain from the verifier's cache of
// chains (the one place a chain is parsed), before any check. When the
// facts are unreadable the error says why, and the Chain, if not nil,
// holds the certificates.
func (v *Verifier) Chain(pemChain []byte) (*Chain, error) {
	pc := v.chainEntry(pemChain)
	if pc.factsErr != nil {
		return pc.facts, pc.factsErr
	}
	return pc.facts, nil
}

// pckChain is a parsed PCK chain and the result of its time-independent
// checks against the verifier's root.
type pckChain struct {
	parts    *chainParts
	facts    *Chain
	factsErr *Error
	err      *Error              // the first failed check
	certs    []*x509.Certificate // leaf, intermediate, root
	caType   string
	ext      *pck.Extension
	leafKey  *ecdsa.PublicKey
}

func (p *pckChain) detail() *PCKDetail {
	d := &PCKDetail{
		FMSPC: hx(p.ext.FMSPC[:]), PCEID: hx(p.ext.PCEID[:]), PCESVN: p.ext.PCESVN,
		CPUSVN: hx(p.ext.CPUSVN[:]), SGXType: p.ext.SGXType, IssuerCN: p.certs[1].Subject.CommonName,
		CAType: p.caType, NotBefore: p.certs[0].NotBefore.UTC(), NotAfter: p.certs[0].NotAfter.UTC(),
	}
	for _, c := range p.ext.CompSVN {
		d.CompSVN = append(d.CompSVN, int(c))
	}
	return d
}

func (v *Verifier) chainEntry(pemChain []byte) *pckChain {
	return v.chains.GetOrCompute(sha256.Sum256(pemChain), func() *pckChain { return v.checkPCKChain(pemChain) })
}

func (v *Verifier) pckChainFor(pemChain []byte) (*pckChain, *Error) {
	pc := v.chainEntry(pemChain)
	if pc.err != nil {
		return nil, pc.err
	}
	return pc, nil
}

// checkPCKChain decodes a chain and performs its time-independent checks.
func (v *Verifier) checkPCKChain(pemChain []byte) *pckChain {
	parts := decodeChain(pemChain)
	pc := &pckChain{parts: parts}
	pc.facts, pc.factsErr = parts.chain(true)
	pc.err = v.checkParts(pc, parts)
	return pc
}

func (v *Verifier) checkParts(pc *pckChain, parts *chainParts) *Error {
	certs := parts.certs
	if parts.certsErr != nil {
		return fail(FailPCKChain, "PCK certificate chain: %v", parts.certsErr)
	}
	if len(certs) != 3 {
		return fail(FailPCKChain, "PCK certificate chain has %d certificates, want 3 (leaf, PCK CA, root)", len(certs))
	}
	leaf, inter, root := certs[0], certs[1], certs[2]
	if !bytes.Equal(root.Raw, v.root.Raw) {
		return fail(FailPCKChain, "PCK chain root %q is not the pinned trust anchor %q", root.Subject.CommonName, v.root.Subject.CommonName)
	}
	pc.certs = []*x509.Certificate{leaf, inter, v.root}
	if parts.caType == "" {
		return unknownCAError(inter)
	}
	pc.caType = parts.caType
	if leaf.Subject.CommonName != pck.CNPCKLeaf {
		return fail(FailPCKChain, "PCK leaf common name %q, want %q", leaf.Subject.CommonName, pck.CNPCKLeaf)
	}
	if e := checkLink(leaf, inter, "PCK certificate", FailPCKChain); e != nil {
		return e
	}
	if e := checkLink(inter, v.root, "PCK CA certificate", FailPCKChain); e != nil {
		return e
	}
	k, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return fail(FailPCKChain, "PCK certificate key is not ECDSA P-256")
	}
	pc.leafKey = k
	if parts.extErr != nil {
		return fail(FailPCKChain, "%v", parts.extErr)
	}
	pc.ext = parts.ext
	return nil
}

// checkLink verifies that child is signed by parent with ECDSA-P256/SHA-256
// and that parent is a CA (basic constraints and key usage, enforced by
// CheckSignatureFrom) whose subject is the child's issuer.
func checkLink(child, parent *x509.Certificate, what, code string) *Error {
	if child.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		return fail(code, "%s %q is signed with %v, want ECDSA-SHA256", what, child.Subject.CommonName, child.SignatureAlgorithm)
	}
	if !bytes.Equal(child.RawIssuer, parent.RawSubject) {
		return fail(code, "%s %q: issuer %q does not match %q", what, child.Subject.CommonName, child.Issuer.CommonName, parent.Subject.CommonName)
	}
	if !parent.BasicConstraintsValid || !parent.IsCA {
		return fail(code, "%s %q: issuer %q is not a CA", what, child.Subject.CommonName, parent.Subject.CommonName)
	}
	if err := child.CheckSignatureFrom(parent); err != nil {
		return fail(code, "%s %q: signature by %q does not verify: %v", what, child.Subject.CommonName, parent.Subject.CommonName, err)
	}
	return nil
}
