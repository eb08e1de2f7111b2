// Package policy is the relying-party attestation policy: which
// measurements, TCB statuses and advisories are acceptable, whether debug
// enclaves/TDs, expired collateral and missing CRLs are tolerated. A policy
// is evaluated against a quote/verify Result.
package policy

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/ppml-project/ppml/quote/verify"
)

// Policy is the JSON policy document. An absent field does not constrain;
// a list means any-of. Defaults: accepted_tcb_statuses ["UpToDate"], debug
// refused, expired collateral refused, CRLs required, simulated quotes
// refused.
type Policy struct {
	TEE                    string   `json:"tee,omitempty"`
	MREnclave              []string `json:"mr_enclave,omitempty"`
	MRSigner               []string `json:"mr_signer,omitempty"`
	ISVProdID              *uint16  `json:"isv_prod_id,omitempty"`
	MinISVSVN              *uint16  `json:"min_isv_svn,omitempty"`
	AllowDebug             bool     `json:"allow_debug,omitempty"`
	MRTD                   []string `json:"mr_td,omitempty"`
	RTMR0                  []string `json:"rtmr0,omitempty"`
	RTMR1                  []string `json:"rtmr1,omitempty"`
	RTMR2                  []string `json:"rtmr2,omitempty"`
	RTMR3                  []string `json:"rtmr3,omitempty"`
	AcceptedTCBStatuses    []string `json:"accepted_tcb_statuses,omitempty"`
	AcceptedAdvisoryIDs    []string `json:"accepted_advisory_ids,omitempty"`
	AllowExpiredCollateral bool     `json:"allow_expired_collateral,omitempty"`
	RequireCRL             *bool    `json:"require_crl,omitempty"`
	ReportData             string   `json:"report_data,omitempty"`
	// AllowSimulated accepts quotes verified against a simulation root
	// (ppml sim). Never set it in production.
	AllowSimulated bool `json:"allow_simulated,omitempty"`
}

var validStatus = map[string]bool{
	verify.StatusUpToDate: true, verify.StatusSWHardeningNeeded: true, verify.StatusConfigurationNeeded: true,
	verify.StatusConfigurationAndSWHardeningNeeded: true, verify.StatusOutOfDate: true,
	verify.StatusOutOfDateConfigurationNeeded: true, verify.StatusRevoked: true,
}

// Parse decodes a policy strictly (an unknown field is an error naming it)
// and validates it.
func Parse(data []byte) (*Policy, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("policy: trailing data after the JSON object")
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// LoadFile reads and parses a policy file.
func LoadFile(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	p, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

func decodeHex(field, s string, n int) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("policy: %s %q is not hex: %v", field, s, err)
	}
	if n > 0 && len(b) != n {
		return nil, fmt.Errorf("policy: %s %q is %d bytes, want %d", field, s, len(b), n)
	}
	return b, nil
}

type hexList struct {
	field  string
	values []string
	size   int
}

func (p *Policy) lists() []hexList {
	return []hexList{
		{"mr_enclave", p.MREnclave, 32}, {"mr_signer", p.MRSigner, 32}, {"mr_td", p.MRTD, 48},
		{"rtmr0", p.RTMR0, 48}, {"rtmr1", p.RTMR1, 48}, {"rtmr2", p.RTMR2, 48}, {"rtmr3", p.RTMR3, 48},
	}
}

// PinsMeasurement reports an error unless the policy names the code it
// accepts: MRENCLAVE, MRSIGNER with ISVPRODID (one signer signs many
// enclaves), or a TDX MRTD or RTMR. A policy without one accepts every
// genuine enclave, so a key bound to it would be released to anyone's code.
func (p *Policy) PinsMeasurement() error {
	if len(p.MREnclave) > 0 || (len(p.MRSigner) > 0 && p.ISVProdID != nil) ||
		len(p.MRTD) > 0 || len(p.RTMR0) > 0 || len(p.RTMR1) > 0 || len(p.RTMR2) > 0 || len(p.RTMR3) > 0 {
		return nil
	}
	if len(p.MRSigner) > 0 {
		return errors.New("the policy pins mr_signer without isv_prod_id: any enclave of that signer would match; add isv_prod_id or mr_enclave")
	}
	return errors.New("the policy pins no measurement: any genuine enclave would match; add mr_enclave, mr_signer with isv_prod_id, or (TDX) mr_td / rtmr0..3")
}

// Validate checks the policy's values.
func (p *Policy) Validate() error {
	switch p.TEE {
	case "", "sgx", "tdx":
	default:
		return fmt.Errorf("policy: tee %q is not \"sgx\" or \"tdx\"", p.TEE)
	}
	for _, l := range p.lists() {
		for _, v := range l.values {
			if _, err := decodeHex(l.field, v, l.size); err != nil {
				return err
			}
		}
	}
	for _, s := range p.AcceptedTCBStatuses {
		if !validStatus[s] {
			return fmt.Errorf("policy: accepted_tcb_statuses: unknown status %q", s)
		}
	}
	if p.ReportData != "" {
		b, err := decodeHex("report_data", p.ReportData, 0)
		if err != nil {
			return err
		}
		if len(b) == 0 || len(b) > 64 {
			return fmt.Errorf("policy: report_data is %d bytes, want 1..64 (shorter values are zero-padded on the right)", len(b))
		}
	}
	return nil
}

// Decision is the outcome of a policy evaluation.
type Decision struct {
	Accepted bool     `json:"accepted"`
	Reasons  []string `json:"reasons"`
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}

// Evaluate checks a verification result against the policy. Reasons lists
// every violated rule (empty when accepted).
func (p *Policy) Evaluate(r *verify.Result) Decision {
	var reasons []string
	add := func(format string, a ...any) { reasons = append(reasons, fmt.Sprintf(format, a...)) }

	if r.Simulated && !p.AllowSimulated {
		add("quote was verified against a simulation root (simulated: true) and the policy does not set allow_simulated")
	}
	if !r.Verified {
		if r.Failure == verify.FailCollateralExpired {
			if !p.AllowExpiredCollateral {
				add("collateral expired (%s) and the policy does not set allow_expired_collateral", r.Error)
			}
		} else {
			add("quote not verified: %s: %s", r.Failure, r.Error)
		}
	} else if r.CollateralExpired && !p.AllowExpiredCollateral {
		add("collateral expired and the policy does not set allow_expired_collateral")
	}
	if p.TEE != "" && r.TEE != p.TEE {
		add("tee %q, policy requires %q", r.TEE, p.TEE)
	}

	values := map[string]string{
		"mr_enclave": r.MREnclave, "mr_signer": r.MRSigner, "mr_td": r.MRTD,
		"rtmr0": r.RTMR0, "rtmr1": r.RTMR1, "rtmr2": r.RTMR2, "rtmr3": r.RTMR3,
	}
	for _, l := range p.lists() {
		if len(l.values) == 0 {
			continue
		}
		got, err := hex.DecodeString(values[l.field])
		if err != nil || len(got) == 0 {
			add("%s required by the policy but the %s quote has none", l.field, r.TEE)
			continue
		}
		match := false
		for _, v := range l.values {
			want, _ := hex.DecodeString(strings.TrimSpace(v))
			if bytes.Equal(got, want) {
				match = true
				break
			}
		}
		if !match {
			shown := make([]string, len(l.values))
			for i, v := range l.values {
				shown[i] = short(strings.ToLower(v))
			}
			add("%s %s not in policy [%s]", l.field, values[l.field], strings.Join(shown, ", "))
		}
	}
	if p.ISVProdID != nil {
		if r.ISVProdID == nil {
			add("isv_prod_id required by the policy but the %s quote has none", r.TEE)
		} else if *r.ISVProdID != *p.ISVProdID {
			add("isv_prod_id %d, policy requires %d", *r.ISVProdID, *p.ISVProdID)
		}
	}
	if p.MinISVSVN != nil {
		if r.ISVSVN == nil {
			add("min_isv_svn set in the policy but the %s quote has no isv_svn", r.TEE)
		} else if *r.ISVSVN < *p.MinISVSVN {
			add("isv_svn %d below policy minimum %d", *r.ISVSVN, *p.MinISVSVN)
		}
	}
	if r.Debug && !p.AllowDebug {
		add("debug %s and the policy does not set allow_debug", map[string]string{"sgx": "enclave", "tdx": "TD"}[r.TEE])
	}

	accepted := p.AcceptedTCBStatuses
	if len(accepted) == 0 {
		accepted = []string{verify.StatusUpToDate}
	}
	if r.TCBStatus == nil {
		if r.Verified {
			add("no TCB status")
		}
	} else if !slices.Contains(accepted, *r.TCBStatus) {
		add("tcb_status %s not in accepted_tcb_statuses %v", *r.TCBStatus, accepted)
	}
	if p.AcceptedAdvisoryIDs != nil {
		for _, a := range r.AdvisoryIDs {
			if !slices.Contains(p.AcceptedAdvisoryIDs, a) {
				add("advisory %s not in accepted_advisory_ids", a)
			}
		}
	}
	if (p.RequireCRL == nil || *p.RequireCRL) && !r.CRLChecked {
		add("CRLs were not checked (the collateral carries none) and the policy requires them (set require_crl: false to allow)")
	}
	if p.ReportData != "" {
		want, _ := hex.DecodeString(strings.TrimSpace(p.ReportData))
		padded := make([]byte, 64)
		copy(padded, want)
		got, _ := hex.DecodeString(r.ReportData)
		if !bytes.Equal(got, padded) {
			add("report_data %s does not equal the policy's %s", short(r.ReportData), short(hex.EncodeToString(padded)))
		}
	}
	return Decision{Accepted: len(reasons) == 0, Reasons: nonNil(reasons)}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
