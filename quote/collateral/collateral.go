// Package collateral holds the DCAP verification collateral in the offline
// JSON layout (the nine fields of Intel's sgx_ql_qve_collateral_t, as used
// by Phala's dcap-qvl), decodes TCB info and QE identity, loads collateral
// from files and from an offline directory cache, and fetches it from an
// Intel PCS / PCCS v4 endpoint.
package collateral

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Collateral is the offline collateral document. All fields are strings; see
// dcap-quote-verification.md §9.2 for their encodings.
type Collateral struct {
	PCKCRLIssuerChain     string `json:"pck_crl_issuer_chain"`
	RootCACRL             string `json:"root_ca_crl"`
	PCKCRL                string `json:"pck_crl"`
	TCBInfoIssuerChain    string `json:"tcb_info_issuer_chain"`
	TCBInfo               string `json:"tcb_info"`
	TCBInfoSignature      string `json:"tcb_info_signature"`
	QEIdentityIssuerChain string `json:"qe_identity_issuer_chain"`
	QEIdentity            string `json:"qe_identity"`
	QEIdentitySignature   string `json:"qe_identity_signature"`
}

// Parse decodes a collateral document strictly: unknown fields, missing
// required fields, bad hex and partial CRL sets are errors naming the field.
func Parse(data []byte) (*Collateral, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Collateral
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("collateral: %w", err)
	}
	if dec.More() {
		return nil, errors.New("collateral: trailing data after the JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("collateral: trailing data after the JSON object")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// LoadFile reads and parses a collateral JSON file.
func LoadFile(path string) (*Collateral, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("collateral: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate checks that required fields are present and well encoded.
func (c *Collateral) Validate() error {
	req := []struct{ name, v string }{
		{"tcb_info_issuer_chain", c.TCBInfoIssuerChain},
		{"tcb_info", c.TCBInfo},
		{"tcb_info_signature", c.TCBInfoSignature},
		{"qe_identity_issuer_chain", c.QEIdentityIssuerChain},
		{"qe_identity", c.QEIdentity},
		{"qe_identity_signature", c.QEIdentitySignature},
	}
	for _, f := range req {
		if strings.TrimSpace(f.v) == "" {
			return fmt.Errorf("collateral: field %s is missing or empty", f.name)
		}
	}
	for _, f := range []struct{ name, v string }{{"tcb_info_signature", c.TCBInfoSignature}, {"qe_identity_signature", c.QEIdentitySignature}} {
		b, err := hex.DecodeString(f.v)
		if err != nil {
			return fmt.Errorf("collateral: field %s is not hex: %v", f.name, err)
		}
		if len(b) != 64 {
			return fmt.Errorf("collateral: field %s is %d bytes, want 64 (r||s)", f.name, len(b))
		}
	}
	n := 0
	for _, v := range []string{c.PCKCRLIssuerChain, c.RootCACRL, c.PCKCRL} {
		if v != "" {
			n++
		}
	}
	if n != 0 && n != 3 {
		return errors.New("collateral: pck_crl_issuer_chain, root_ca_crl and pck_crl must be all present or all empty")
	}
	for _, f := range []struct{ name, v string }{{"root_ca_crl", c.RootCACRL}, {"pck_crl", c.PCKCRL}} {
		if _, err := DecodeCRL(f.v); f.v != "" && err != nil {
			return fmt.Errorf("collateral: field %s: %v", f.name, err)
		}
	}
	return nil
}

// HasCRLs reports whether the collateral carries the CRLs.
func (c *Collateral) HasCRLs() bool { return c.RootCACRL != "" && c.PCKCRL != "" }

// Hash returns a digest over every field, used as a cache key.
func (c *Collateral) Hash() [32]byte {
	h := sha256.New()
	for _, v := range []string{c.PCKCRLIssuerChain, c.RootCACRL, c.PCKCRL, c.TCBInfoIssuerChain, c.TCBInfo,
		c.TCBInfoSignature, c.QEIdentityIssuerChain, c.QEIdentity, c.QEIdentitySignature} {
		var l [8]byte
		n := uint64(len(v))
		for i := range l {
			l[i] = byte(n >> (8 * i))
		}
		h.Write(l[:])
		h.Write([]byte(v))
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// Marshal encodes the collateral as indented JSON.
func (c *Collateral) Marshal() ([]byte, error) { return json.MarshalIndent(c, "", "  ") }

// DecodeCRL accepts a CRL as hex (either case), PEM or raw DER text and
// returns the DER bytes.
func DecodeCRL(s string) ([]byte, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "-----BEGIN") {
		blk, _ := pem.Decode([]byte(t))
		if blk == nil {
			return nil, errors.New("bad PEM CRL")
		}
		return blk.Bytes, nil
	}
	b, err := hex.DecodeString(t)
	if err != nil {
		return nil, fmt.Errorf("CRL is not hex: %v", err)
	}
	if len(b) == 0 {
		return nil, errors.New("CRL is empty")
	}
	return b, nil
}

// ParseChain decodes concatenated PEM certificates.
func ParseChain(pemText []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := pemText
	for {
		rest = bytes.TrimLeft(rest, " \t\r\n")
		if len(rest) == 0 {
			break
		}
		blk, r := pem.Decode(rest)
		if blk == nil {
			return nil, fmt.Errorf("certificate %d: not PEM (%d bytes left undecoded)", len(out)+1, len(rest))
		}
		rest = r
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("certificate %d: PEM block type %q, want CERTIFICATE", len(out)+1, blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %v", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate found")
	}
	return out, nil
}

// HexBytes is a byte string encoded as hex in JSON (either case accepted).
type HexBytes []byte

// UnmarshalJSON implements json.Unmarshaler.
func (h *HexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("bad hex %q: %v", s, err)
	}
	*h = v
	return nil
}

// MarshalJSON emits upper-case hex, as Intel does.
func (h HexBytes) MarshalJSON() ([]byte, error) {
	return json.Marshal(strings.ToUpper(hex.EncodeToString(h)))
}

// TCBComponent is one SGX or TDX TCB component.
type TCBComponent struct {
	SVN      int    `json:"svn"`
	Category string `json:"category,omitempty"`
	Type     string `json:"type,omitempty"`
}

// TCB is the tcb object of a TCB level.
type TCB struct {
	SGXComponents []TCBComponent `json:"sgxtcbcomponents"`
	PCESVN        int            `json:"pcesvn"`
	TDXComponents []TCBComponent `json:"tdxtcbcomponents,omitempty"`
}

// TCBLevel is a platform TCB level.
type TCBLevel struct {
	TCB         TCB       `json:"tcb"`
	TCBDate     time.Time `json:"tcbDate"`
	TCBStatus   string    `json:"tcbStatus"`
	AdvisoryIDs []string  `json:"advisoryIDs,omitempty"`
}

// ISVLevel is a QE identity or TDX module TCB level.
type ISVLevel struct {
	TCB struct {
		ISVSVN int `json:"isvsvn"`
	} `json:"tcb"`
	TCBDate     time.Time `json:"tcbDate"`
	TCBStatus   string    `json:"tcbStatus"`
	AdvisoryIDs []string  `json:"advisoryIDs,omitempty"`
}

// TDXModule is the tdxModule object of TDX TCB info.
type TDXModule struct {
	MRSigner       HexBytes `json:"mrsigner"`
	Attributes     HexBytes `json:"attributes"`
	AttributesMask HexBytes `json:"attributesMask"`
}

// TDXModuleIdentity is an entry of tdxModuleIdentities.
type TDXModuleIdentity struct {
	ID             string     `json:"id"`
	MRSigner       HexBytes   `json:"mrsigner"`
	Attributes     HexBytes   `json:"attributes"`
	AttributesMask HexBytes   `json:"attributesMask"`
	TCBLevels      []ISVLevel `json:"tcbLevels"`
}

// TCBInfo is the decoded tcbInfo object (version 3).
type TCBInfo struct {
	ID                      string              `json:"id"`
	Version                 int                 `json:"version"`
	IssueDate               time.Time           `json:"issueDate"`
	NextUpdate              time.Time           `json:"nextUpdate"`
	FMSPC                   HexBytes            `json:"fmspc"`
	PCEID                   HexBytes            `json:"pceId"`
	TCBType                 int                 `json:"tcbType"`
	TCBEvaluationDataNumber int                 `json:"tcbEvaluationDataNumber"`
	TDXModule               *TDXModule          `json:"tdxModule,omitempty"`
	TDXModuleIdentities     []TDXModuleIdentity `json:"tdxModuleIdentities,omitempty"`
	TCBLevels               []TCBLevel          `json:"tcbLevels"`
}

// QEIdentity is the decoded enclaveIdentity object (version 2).
type QEIdentity struct {
	ID                      string     `json:"id"`
	Version                 int        `json:"version"`
	IssueDate               time.Time  `json:"issueDate"`
	NextUpdate              time.Time  `json:"nextUpdate"`
	TCBEvaluationDataNumber int        `json:"tcbEvaluationDataNumber"`
	MiscSelect              HexBytes   `json:"miscselect"`
	MiscSelectMask          HexBytes   `json:"miscselectMask"`
	Attributes              HexBytes   `json:"attributes"`
	AttributesMask          HexBytes   `json:"attributesMask"`
	MRSigner                HexBytes   `json:"mrsigner"`
	ISVProdID               int        `json:"isvprodid"`
	TCBLevels               []ISVLevel `json:"tcbLevels"`
}

// Platform TCB statuses.
var validPlatformStatus = map[string]bool{
	"UpToDate": true, "SWHardeningNeeded": true, "ConfigurationNeeded": true,
	"ConfigurationAndSWHardeningNeeded": true, "OutOfDate": true,
	"OutOfDateConfigurationNeeded": true, "Revoked": true,
}

var validISVStatus = map[string]bool{"UpToDate": true, "OutOfDate": true, "Revoked": true}

// ParseTCBInfo decodes and sanity-checks a tcbInfo object.
func ParseTCBInfo(raw []byte) (*TCBInfo, error) {
	var t TCBInfo
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("tcb_info: %w", err)
	}
	if len(t.FMSPC) != 6 {
		return nil, fmt.Errorf("tcb_info: fmspc is %d bytes, want 6", len(t.FMSPC))
	}
	if len(t.PCEID) != 2 {
		return nil, fmt.Errorf("tcb_info: pceId is %d bytes, want 2", len(t.PCEID))
	}
	if t.IssueDate.IsZero() || t.NextUpdate.IsZero() {
		return nil, errors.New("tcb_info: issueDate and nextUpdate are required")
	}
	if len(t.TCBLevels) == 0 {
		return nil, errors.New("tcb_info: tcbLevels is empty")
	}
	for i, l := range t.TCBLevels {
		if !validPlatformStatus[l.TCBStatus] {
			return nil, fmt.Errorf("tcb_info: tcbLevels[%d]: unknown tcbStatus %q", i, l.TCBStatus)
		}
		if len(l.TCB.SGXComponents) != 16 {
			return nil, fmt.Errorf("tcb_info: tcbLevels[%d]: %d sgxtcbcomponents, want 16", i, len(l.TCB.SGXComponents))
		}
		if l.TCB.TDXComponents != nil && len(l.TCB.TDXComponents) != 16 {
			return nil, fmt.Errorf("tcb_info: tcbLevels[%d]: %d tdxtcbcomponents, want 16", i, len(l.TCB.TDXComponents))
		}
	}
	for i, m := range t.TDXModuleIdentities {
		for j, l := range m.TCBLevels {
			if !validISVStatus[l.TCBStatus] {
				return nil, fmt.Errorf("tcb_info: tdxModuleIdentities[%d].tcbLevels[%d]: unknown tcbStatus %q", i, j, l.TCBStatus)
			}
		}
	}
	return &t, nil
}

// ParseQEIdentity decodes and sanity-checks an enclaveIdentity object.
func ParseQEIdentity(raw []byte) (*QEIdentity, error) {
	var q QEIdentity
	if err := json.Unmarshal(raw, &q); err != nil {
		return nil, fmt.Errorf("qe_identity: %w", err)
	}
	for _, f := range []struct {
		name string
		v    []byte
		n    int
	}{{"miscselect", q.MiscSelect, 4}, {"miscselectMask", q.MiscSelectMask, 4}, {"attributes", q.Attributes, 16},
		{"attributesMask", q.AttributesMask, 16}, {"mrsigner", q.MRSigner, 32}} {
		if len(f.v) != f.n {
			return nil, fmt.Errorf("qe_identity: %s is %d bytes, want %d", f.name, len(f.v), f.n)
		}
	}
	if q.IssueDate.IsZero() || q.NextUpdate.IsZero() {
		return nil, errors.New("qe_identity: issueDate and nextUpdate are required")
	}
	if len(q.TCBLevels) == 0 {
		return nil, errors.New("qe_identity: tcbLevels is empty")
	}
	for i, l := range q.TCBLevels {
		if !validISVStatus[l.TCBStatus] {
			return nil, fmt.Errorf("qe_identity: tcbLevels[%d]: unknown tcbStatus %q", i, l.TCBStatus)
		}
	}
	return &q, nil
}
