// Package sim is a simulated Intel TEE for machines without SGX/TDX. It
// creates a simulation PKI (root CA, PCK Platform CA, PCK certificate with
// the SGX extension, TCB signing certificate, attestation key) and matching
// signed collateral (CRLs, TCB info, QE identity) in the offline collateral
// JSON layout, and produces quotes in the real SGX v3 and TDX v4 binary
// layouts. Quotes are verified by quote/verify with the simulation root as
// trust anchor; because that root is not the Intel SGX Root CA, every
// verification result says simulated: true.
package sim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/collateral"
	"github.com/ppml-project/ppml/quote/pck"
	"github.com/ppml-project/ppml/quote/verify"
)

// RootCommonName is the distinctive subject of every simulation root.
const RootCommonName = "PPML SIMULATED SGX Root CA - NOT INTEL - NOT FOR PRODUCTION"

const simOrg = "PPML Simulation (not Intel)"

// File names inside a simulation directory.
const (
	fileConfig         = "sim-config"
	fileRootCert       = "root_ca.pem"
	fileRootKey        = "root_ca.key"
	filePCKCACert      = "pck_platform_ca.pem"
	filePCKCAKey       = "pck_platform_ca.key"
	filePCKCert        = "pck.pem"
	filePCKKey         = "pck.key"
	fileTCBSigningCert = "tcb_signing.pem"
	fileTCBSigningKey  = "tcb_signing.key"
	fileAttestKey      = "attestation.key"
	fileCollateralSGX  = "collateral-sgx.json"
	fileCollateralTDX  = "collateral-tdx.json"
)

// Config describes the simulated platform. Zero values take defaults.
type Config struct {
	// Now is the creation time (default time.Now()).
	Now time.Time `json:"created"`
	// Validity of the collateral (TCB info, QE identity, CRLs); default
	// 365 days. Certificates are valid for 10 years.
	CollateralValidity time.Duration `json:"collateral_validity"`
	FMSPC              string        `json:"fmspc"`    // 12 hex digits, default "00906ed50000"
	CompSVN            [16]byte      `json:"comp_svn"` // default 2,2,2,...
	PCESVN             uint16        `json:"pcesvn"`   // default 13
	QESVN              uint16        `json:"qe_svn"`   // default 8
	// TEETCBSVN of TDX quotes, default 03 01 02 00…: TDX module major
	// version 1 (identity TDX_01) at SVN 3.
	TEETCBSVN [16]byte `json:"tee_tcb_svn"`
	// TCBEvaluationDataNumber of the TCB info and of the QE identity
	// (default 17 each), for tests of a verifier's freshness minimum.
	TCBInfoEvaluationDataNumber    int `json:"tcb_info_evaluation_data_number,omitempty"`
	QEIdentityEvaluationDataNumber int `json:"qe_identity_evaluation_data_number,omitempty"`
}

func (c *Config) defaults() {
	if c.Now.IsZero() {
		c.Now = time.Now()
	}
	c.Now = c.Now.UTC().Truncate(time.Second)
	if c.CollateralValidity == 0 {
		c.CollateralValidity = 365 * 24 * time.Hour
	}
	if c.TCBInfoEvaluationDataNumber == 0 {
		c.TCBInfoEvaluationDataNumber = 17
	}
	if c.QEIdentityEvaluationDataNumber == 0 {
		c.QEIdentityEvaluationDataNumber = 17
	}
	if c.FMSPC == "" {
		c.FMSPC = "00906ed50000"
	}
	if c.CompSVN == ([16]byte{}) {
		for i := range 8 {
			c.CompSVN[i] = 2
		}
	}
	if c.PCESVN == 0 {
		c.PCESVN = 13
	}
	if c.QESVN == 0 {
		c.QESVN = 8
	}
	if c.TEETCBSVN == ([16]byte{}) {
		c.TEETCBSVN = [16]byte{3, 1, 2}
	}
}

// SimTEE is a loaded simulation PKI.
type SimTEE struct {
	dir        string
	cfg        Config
	root       *x509.Certificate
	pckCA      *x509.Certificate
	pckLeaf    *x509.Certificate
	pckKey     *ecdsa.PrivateKey
	attestKey  *ecdsa.PrivateKey
	chainPEM   []byte
	collateral map[abi.TEE]*collateral.Collateral
}

// QE identities of the simulated quoting enclaves.
var (
	simQEMRSigner = sha256.Sum256([]byte("ppml simulated quoting enclave signer"))
	qeAttributes  = [16]byte{0x11}
)

func qeProdID(tee abi.TEE) uint16 {
	if tee == abi.TDX {
		return 2
	}
	return 1
}

// Init creates a simulation PKI and collateral in dir with default
// settings. dir must not already hold a simulation.
func Init(dir string) (*SimTEE, error) { return InitWith(dir, Config{}) }

// InitWith is Init with an explicit configuration.
func InitWith(dir string, cfg Config) (*SimTEE, error) {
	cfg.defaults()
	fmspc, err := hex.DecodeString(cfg.FMSPC)
	if err != nil || len(fmspc) != 6 {
		return nil, fmt.Errorf("sim: FMSPC %q must be 12 hex digits", cfg.FMSPC)
	}
	if _, err := os.Stat(filepath.Join(dir, fileConfig)); err == nil {
		return nil, fmt.Errorf("sim: %s already holds a simulation (%s exists); use another directory or remove it", dir, fileConfig)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	now := cfg.Now
	notBefore, notAfter := now.Add(-time.Hour), now.AddDate(10, 0, 0)

	keys := map[string]*ecdsa.PrivateKey{}
	for _, f := range []string{fileRootKey, filePCKCAKey, filePCKKey, fileTCBSigningKey, fileAttestKey} {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		keys[f] = k
	}
	serial := func() *big.Int {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		return n.Add(n, big.NewInt(1))
	}
	name := func(cn string) pkix.Name {
		return pkix.Name{CommonName: cn, Organization: []string{simOrg}, Country: []string{"ZZ"}}
	}
	rootTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: name(RootCommonName), NotBefore: notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 1,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &keys[fileRootKey].PublicKey, keys[fileRootKey])
	if err != nil {
		return nil, fmt.Errorf("sim: root CA: %w", err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: name(pck.CNPlatformCA), NotBefore: notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 0, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, root, &keys[filePCKCAKey].PublicKey, keys[fileRootKey])
	if err != nil {
		return nil, fmt.Errorf("sim: PCK CA: %w", err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	ext := &pck.Extension{CompSVN: cfg.CompSVN, PCESVN: cfg.PCESVN, CPUSVN: cfg.CompSVN, SGXType: 1}
	copy(ext.FMSPC[:], fmspc)
	ppid := sha256.Sum256(rootDER)
	ext.PPID = ppid[:16]
	extDER, err := ext.Marshal()
	if err != nil {
		return nil, fmt.Errorf("sim: SGX extension: %w", err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: name(pck.CNPCKLeaf), NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtraExtensions: []pkix.Extension{{Id: pck.OIDSGXExtension, Value: extDER}},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &keys[filePCKKey].PublicKey, keys[filePCKCAKey])
	if err != nil {
		return nil, fmt.Errorf("sim: PCK certificate: %w", err)
	}
	signTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: name(verify.CNTCBSigning), NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
	}
	signDER, err := x509.CreateCertificate(rand.Reader, signTmpl, root, &keys[fileTCBSigningKey].PublicKey, keys[fileRootKey])
	if err != nil {
		return nil, fmt.Errorf("sim: TCB signing certificate: %w", err)
	}

	files := map[string][]byte{
		fileRootCert: pemCert(rootDER), filePCKCACert: pemCert(caDER), filePCKCert: pemCert(leafDER),
		fileTCBSigningCert: pemCert(signDER),
	}
	for f, k := range keys {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		files[f] = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	signCert, _ := x509.ParseCertificate(signDER)
	for _, tee := range []abi.TEE{abi.SGX, abi.TDX} {
		col, err := buildCollateral(tee, &cfg, fmspc, root, keys[fileRootKey], ca, keys[filePCKCAKey], signCert, keys[fileTCBSigningKey])
		if err != nil {
			return nil, err
		}
		b, err := col.Marshal()
		if err != nil {
			return nil, err
		}
		files[collateralFile(tee)] = b
	}
	cb, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	files[fileConfig] = cb
	for f, b := range files {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
	}
	return Load(dir)
}

func collateralFile(tee abi.TEE) string {
	if tee == abi.TDX {
		return fileCollateralTDX
	}
	return fileCollateralSGX
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func rawSign(k *ecdsa.PrivateKey, msg []byte) ([64]byte, error) {
	var out [64]byte
	h := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, k, h[:])
	if err != nil {
		return out, err
	}
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out, nil
}

func buildCollateral(tee abi.TEE, cfg *Config, fmspc []byte, root *x509.Certificate, rootKey *ecdsa.PrivateKey,
	ca *x509.Certificate, caKey *ecdsa.PrivateKey, signer *x509.Certificate, signKey *ecdsa.PrivateKey) (*collateral.Collateral, error) {
	issue, next := cfg.Now, cfg.Now.Add(cfg.CollateralValidity)
	comps := func(svn [16]byte) []collateral.TCBComponent {
		out := make([]collateral.TCBComponent, 16)
		for i := range out {
			out[i].SVN = int(svn[i])
		}
		return out
	}
	lower := func(svn [16]byte) [16]byte {
		for i := range svn {
			if svn[i] > 0 {
				svn[i]--
			}
		}
		return svn
	}
	ti := collateral.TCBInfo{
		ID: "SGX", Version: 3, IssueDate: issue, NextUpdate: next, FMSPC: fmspc, PCEID: []byte{0, 0},
		TCBEvaluationDataNumber: cfg.TCBInfoEvaluationDataNumber,
	}
	upTo := collateral.TCBLevel{TCB: collateral.TCB{SGXComponents: comps(cfg.CompSVN), PCESVN: int(cfg.PCESVN)},
		TCBDate: issue.Truncate(24 * time.Hour), TCBStatus: verify.StatusUpToDate}
	old := collateral.TCBLevel{TCB: collateral.TCB{SGXComponents: comps(lower(cfg.CompSVN)), PCESVN: int(cfg.PCESVN) - 1},
		TCBDate: issue.AddDate(-1, 0, 0).Truncate(24 * time.Hour), TCBStatus: verify.StatusOutOfDate, AdvisoryIDs: []string{"INTEL-SA-00000"}}
	qeID := "QE"
	if tee == abi.TDX {
		ti.ID = "TDX"
		qeID = "TD_QE"
		tdx := cfg.TEETCBSVN
		upTo.TCB.TDXComponents = comps(tdx)
		old.TCB.TDXComponents = comps(lower(tdx))
		zero8 := make([]byte, 8)
		ti.TDXModule = &collateral.TDXModule{MRSigner: make([]byte, 48), Attributes: zero8, AttributesMask: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
		mod := collateral.TDXModuleIdentity{ID: fmt.Sprintf("TDX_%02X", max(tdx[1], 1)), MRSigner: make([]byte, 48), Attributes: zero8,
			AttributesMask: ti.TDXModule.AttributesMask}
		l1 := collateral.ISVLevel{TCBDate: upTo.TCBDate, TCBStatus: verify.StatusUpToDate}
		l1.TCB.ISVSVN = int(tdx[0])
		l2 := collateral.ISVLevel{TCBDate: old.TCBDate, TCBStatus: verify.StatusOutOfDate}
		l2.TCB.ISVSVN = 0
		mod.TCBLevels = []collateral.ISVLevel{l1, l2}
		ti.TDXModuleIdentities = []collateral.TDXModuleIdentity{mod}
	}
	ti.TCBLevels = []collateral.TCBLevel{upTo, old}
	tiJSON, err := json.Marshal(ti)
	if err != nil {
		return nil, err
	}
	mask := [16]byte{0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	qi := collateral.QEIdentity{
		ID: qeID, Version: 2, IssueDate: issue, NextUpdate: next, TCBEvaluationDataNumber: cfg.QEIdentityEvaluationDataNumber,
		MiscSelect: make([]byte, 4), MiscSelectMask: []byte{0xff, 0xff, 0xff, 0xff},
		Attributes: qeAttributes[:], AttributesMask: mask[:], MRSigner: simQEMRSigner[:], ISVProdID: int(qeProdID(tee)),
	}
	q1 := collateral.ISVLevel{TCBDate: upTo.TCBDate, TCBStatus: verify.StatusUpToDate}
	q1.TCB.ISVSVN = int(cfg.QESVN)
	q2 := collateral.ISVLevel{TCBDate: old.TCBDate, TCBStatus: verify.StatusOutOfDate}
	q2.TCB.ISVSVN = 0
	qi.TCBLevels = []collateral.ISVLevel{q1, q2}
	qiJSON, err := json.Marshal(qi)
	if err != nil {
		return nil, err
	}
	tiSig, err := rawSign(signKey, tiJSON)
	if err != nil {
		return nil, err
	}
	qiSig, err := rawSign(signKey, qiJSON)
	if err != nil {
		return nil, err
	}
	crl := func(issuer *x509.Certificate, key *ecdsa.PrivateKey) (string, error) {
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number: big.NewInt(1), ThisUpdate: issue, NextUpdate: next,
		}, issuer, key)
		return hex.EncodeToString(der), err
	}
	rootCRL, err := crl(root, rootKey)
	if err != nil {
		return nil, fmt.Errorf("sim: root CA CRL: %w", err)
	}
	pckCRL, err := crl(ca, caKey)
	if err != nil {
		return nil, fmt.Errorf("sim: PCK CRL: %w", err)
	}
	signChain := string(pemCert(signer.Raw)) + string(pemCert(root.Raw))
	return &collateral.Collateral{
		PCKCRLIssuerChain:     string(pemCert(ca.Raw)) + string(pemCert(root.Raw)),
		RootCACRL:             rootCRL,
		PCKCRL:                pckCRL,
		TCBInfoIssuerChain:    signChain,
		TCBInfo:               string(tiJSON),
		TCBInfoSignature:      hex.EncodeToString(tiSig[:]),
		QEIdentityIssuerChain: signChain,
		QEIdentity:            string(qiJSON),
		QEIdentitySignature:   hex.EncodeToString(qiSig[:]),
	}, nil
}

func readCert(dir, f string) (*x509.Certificate, error) {
	b, err := os.ReadFile(filepath.Join(dir, f))
	if err != nil {
		return nil, err
	}
	certs, err := collateral.ParseChain(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f, err)
	}
	return certs[0], nil
}

func readKey(dir, f string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(filepath.Join(dir, f))
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: not PEM", f)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ECDSA key", f)
	}
	return ek, nil
}

// Load reads a simulation directory created by Init.
func Load(dir string) (*SimTEE, error) {
	s, err := LoadQuoting(dir)
	if err != nil {
		return nil, err
	}
	for _, tee := range []abi.TEE{abi.SGX, abi.TDX} {
		c, err := collateral.LoadFile(filepath.Join(dir, collateralFile(tee)))
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		s.collateral[tee] = c
	}
	return s, nil
}

// LoadQuoting loads only what signing quotes needs (keys and certificates),
// not the collateral: a simulated enclave loads this on every attestation
// and never verifies (parsing both collateral files was most of its start).
func LoadQuoting(dir string) (*SimTEE, error) {
	cb, err := os.ReadFile(filepath.Join(dir, fileConfig))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("sim: %s is not a simulation directory (no %s): run `ppml sim init --sim-dir %s` first", dir, fileConfig, dir)
		}
		return nil, fmt.Errorf("sim: %w", err)
	}
	s := &SimTEE{dir: dir, collateral: map[abi.TEE]*collateral.Collateral{}}
	if err := json.Unmarshal(cb, &s.cfg); err != nil {
		return nil, fmt.Errorf("sim: %s: %w", fileConfig, err)
	}
	if s.root, err = readCert(dir, fileRootCert); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if s.root.Subject.CommonName != RootCommonName {
		return nil, fmt.Errorf("sim: %s is not a simulation root (subject %q)", fileRootCert, s.root.Subject.CommonName)
	}
	if s.pckCA, err = readCert(dir, filePCKCACert); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if s.pckLeaf, err = readCert(dir, filePCKCert); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if s.pckKey, err = readKey(dir, filePCKKey); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if s.attestKey, err = readKey(dir, fileAttestKey); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	s.chainPEM = append(append(pemCert(s.pckLeaf.Raw), pemCert(s.pckCA.Raw)...), pemCert(s.root.Raw)...)
	return s, nil
}

// Dir returns the simulation directory.
func (s *SimTEE) Dir() string { return s.dir }

// Root returns the simulation root CA (the trust anchor for its quotes).
func (s *SimTEE) Root() *x509.Certificate { return s.root }

// RootPEM returns the simulation root CA in PEM.
func (s *SimTEE) RootPEM() []byte { return pemCert(s.root.Raw) }

// Collateral returns the simulation's signed collateral for a TEE.
func (s *SimTEE) Collateral(tee abi.TEE) (*collateral.Collateral, error) {
	c, ok := s.collateral[tee]
	if !ok {
		return nil, fmt.Errorf("sim: no collateral for tee %q (loaded for quoting only: use sim.Load)", tee)
	}
	return c, nil
}

// CollateralPath returns the collateral file of a TEE.
func (s *SimTEE) CollateralPath(tee abi.TEE) string { return filepath.Join(s.dir, collateralFile(tee)) }

// VerifyOptions returns verifier options that trust the simulation root.
func (s *SimTEE) VerifyOptions(now func() time.Time) verify.Options {
	return verify.Options{Root: s.root, Now: now}
}

// IsSimulationRoot reports whether a certificate is a simulation root.
func IsSimulationRoot(c *x509.Certificate) bool {
	return c != nil && c.Subject.CommonName == RootCommonName
}

// Measurements are the values a simulated quote carries. SGX uses
// MREnclave, MRSigner, ISVProdID, ISVSVN; TDX uses MRTD and RTMR. Debug
// sets ATTRIBUTES.DEBUG (SGX) or TD_ATTRIBUTES.DEBUG (TDX).
type Measurements struct {
	MREnclave  [32]byte
	MRSigner   [32]byte
	ISVProdID  uint16
	ISVSVN     uint16
	MRTD       [48]byte
	RTMR       [4][48]byte
	Debug      bool
	ReportData [64]byte
}

// Quote produces a signed quote: SGX quote v3 or TDX quote v4.
func (s *SimTEE) Quote(tee abi.TEE, m Measurements) ([]byte, error) { return s.quote(tee, m, 0) }

// QuoteV5 produces a signed TDX quote v5 with a TD report 1.0
// (abi.BodyTypeTD10) or 1.5 (abi.BodyTypeTD15, TEE_TCB_SVN_2 and
// MRSERVICETD zero): header, body descriptor (type and size) and body
// are signed.
func (s *SimTEE) QuoteV5(m Measurements, bodyType uint16) ([]byte, error) {
	if bodyType != abi.BodyTypeTD10 && bodyType != abi.BodyTypeTD15 {
		return nil, fmt.Errorf("sim: v5 body type %d not supported (want %d or %d, a TD report)", bodyType, abi.BodyTypeTD10, abi.BodyTypeTD15)
	}
	return s.quote(abi.TDX, m, bodyType)
}

// quote builds an SGX v3, TDX v4 or (v5BodyType != 0) TDX v5 quote.
func (s *SimTEE) quote(tee abi.TEE, m Measurements, v5BodyType uint16) ([]byte, error) {
	h := abi.Header{AttKeyType: abi.AttKeyTypeECDSAP256, QEVendorID: abi.IntelQEVendorID}
	copy(h.UserData[:], "ppml-sim")
	var body []byte
	switch tee {
	case abi.SGX:
		h.Version, h.QESVN, h.PCESVN = 3, s.cfg.QESVN, s.cfg.PCESVN
		r := abi.EnclaveReport{CPUSVN: s.cfg.CompSVN, MREnclave: m.MREnclave, MRSigner: m.MRSigner,
			ISVProdID: m.ISVProdID, ISVSVN: m.ISVSVN, ReportData: m.ReportData}
		flags := uint64(0x05) // INIT | MODE64BIT
		if m.Debug {
			flags |= 0x02
		}
		binary.LittleEndian.PutUint64(r.Attributes[:8], flags)
		binary.LittleEndian.PutUint64(r.Attributes[8:], 0xe7) // XFRM
		body = r.Marshal()
	case abi.TDX:
		h.Version, h.TEEType = 4, abi.TEETypeTDX
		r := abi.TDReport{TEETCBSVN: s.cfg.TEETCBSVN, MRTD: m.MRTD, RTMR: m.RTMR, ReportData: m.ReportData, V15: v5BodyType == abi.BodyTypeTD15}
		r.MRSeam = sha256x48("ppml simulated TDX module")
		attrs := uint64(1 << 28) // SEPT_VE_DISABLE
		if m.Debug {
			attrs |= 1
		}
		binary.LittleEndian.PutUint64(r.TDAttributes[:], attrs)
		binary.LittleEndian.PutUint64(r.XFAM[:], 0x61ae7)
		body = r.Marshal()
	default:
		return nil, fmt.Errorf("sim: tee %q not supported (want sgx or tdx)", tee)
	}
	signed := h.Marshal()
	if v5BodyType != 0 {
		h.Version = 5
		signed = h.Marshal()
		signed = binary.LittleEndian.AppendUint16(signed, v5BodyType)
		signed = binary.LittleEndian.AppendUint32(signed, uint32(len(body)))
	}
	signed = append(signed, body...)

	p := &abi.SignatureParts{PCKChainPEM: s.chainPEM}
	ak := s.attestKey.PublicKey
	akBytes, err := ak.Bytes() // 0x04 || x || y
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	copy(p.AttestKey[:], akBytes[1:])
	p.QEAuthData = make([]byte, 32)
	for i := range p.QEAuthData {
		p.QEAuthData[i] = byte(i)
	}
	qe := abi.EnclaveReport{CPUSVN: s.cfg.CompSVN, Attributes: qeAttributes, MRSigner: simQEMRSigner,
		ISVProdID: qeProdID(tee), ISVSVN: s.cfg.QESVN}
	qe.MREnclave = sha256.Sum256([]byte("ppml simulated quoting enclave " + string(tee)))
	bind := sha256.Sum256(append(p.AttestKey[:], p.QEAuthData...))
	copy(qe.ReportData[:32], bind[:])
	p.QEReport = qe.Marshal()
	if p.QEReportSig, err = rawSign(s.pckKey, p.QEReport); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if p.Signature, err = rawSign(s.attestKey, signed); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	return abi.AppendSignatureData(signed, h.Version, p)
}

func sha256x48(s string) [48]byte {
	var out [48]byte
	a := sha256.Sum256([]byte(s))
	b := sha256.Sum256(a[:])
	copy(out[:32], a[:])
	copy(out[32:], b[:16])
	return out
}

// ParseHex decodes a hex measurement of at most n bytes into a
// fixed-size, zero-right-padded value (report data is commonly a 32-byte
// hash padded with zeros). An empty string gives zeros.
func ParseHex(field, s string, n int, exact bool) ([]byte, error) {
	out := make([]byte, n)
	s = strings.TrimSpace(s)
	if s == "" {
		return out, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %q is not hex: %v", field, s, err)
	}
	if len(b) > n || (exact && len(b) != n) {
		return nil, fmt.Errorf("%s: %d bytes, want %d (%d hex digits)", field, len(b), n, 2*n)
	}
	copy(out, b)
	return out, nil
}
