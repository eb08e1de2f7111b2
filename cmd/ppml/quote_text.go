package main

import (
	"fmt"
	"io"
	"time"

	"github.com/ppml-project/ppml/quote/policy"
	"github.com/ppml-project/ppml/quote/verify"
)

// verifyOutput is what "ppml quote verify" prints: the verdict and, with a
// policy, its decision.
type verifyOutput struct {
	*verify.Result
	Policy *policy.Decision `json:"policy,omitempty"`
}

func (o verifyOutput) writeText(w io.Writer) {
	r := o.Result
	field(w, "tee", r.TEE)
	field(w, "verified", r.Verified)
	field(w, "simulated", r.Simulated)
	field(w, "tcb_status", orNil(r.TCBStatus))
	field(w, "advisory_ids", listOrNil(r.AdvisoryIDs))
	field(w, "crl_checked", r.CRLChecked)
	field(w, "collateral_expired", r.CollateralExpired)
	writeExpiry(w, r)
	optional(w, "failure", r.Failure)
	optional(w, "error", r.Error)
	writeMeasurements(w, r)
	if d := o.Policy; d != nil {
		fmt.Fprintf(w, "%-22s accepted=%v\n", "policy:", d.Accepted)
		for _, reason := range d.Reasons {
			fmt.Fprintf(w, "  - %v\n", reason)
		}
	}
}

// quoteFields is what "ppml quote show" prints: the facts of a quote that
// was not verified, without any verdict field. The fields are in name order,
// as the JSON keys always were.
type quoteFields struct {
	CollateralExpiresAt *time.Time `json:"collateral_expires_at,omitempty"`
	Debug               bool       `json:"debug"`
	FMSPC               string     `json:"fmspc,omitempty"`
	ISVProdID           *uint16    `json:"isv_prod_id,omitempty"`
	ISVSVN              *uint16    `json:"isv_svn,omitempty"`
	MRConfigID          string     `json:"mr_config_id,omitempty"`
	MREnclave           string     `json:"mr_enclave,omitempty"`
	MROwner             string     `json:"mr_owner,omitempty"`
	MROwnerConfig       string     `json:"mr_owner_config,omitempty"`
	MRSeam              string     `json:"mr_seam,omitempty"`
	MRSigner            string     `json:"mr_signer,omitempty"`
	MRTD                string     `json:"mr_td,omitempty"`
	PCK                 *pckFields `json:"pck,omitempty"`
	QuoteVersion        int        `json:"quote_version"`
	ReportData          string     `json:"report_data,omitempty"`
	RTMR0               string     `json:"rtmr0,omitempty"`
	RTMR1               string     `json:"rtmr1,omitempty"`
	RTMR2               string     `json:"rtmr2,omitempty"`
	RTMR3               string     `json:"rtmr3,omitempty"`
	TDAttributes        string     `json:"td_attributes,omitempty"`
	TDReportVersion     string     `json:"td_report_version,omitempty"`
	TEE                 string     `json:"tee"`
	TEETCBSVN           string     `json:"tee_tcb_svn,omitempty"`
	TrailingBytes       int        `json:"trailing_bytes"`

	result *verify.Result
}

// pckFields is verify.PCKDetail with its JSON keys in name order.
type pckFields struct {
	CAType    string    `json:"ca_type"`
	CompSVN   []int     `json:"comp_svn"`
	CPUSVN    string    `json:"cpusvn"`
	FMSPC     string    `json:"fmspc"`
	IssuerCN  string    `json:"issuer_cn"`
	NotAfter  time.Time `json:"not_after"`
	NotBefore time.Time `json:"not_before"`
	PCEID     string    `json:"pceid"`
	PCESVN    uint16    `json:"pcesvn"`
	SGXType   int       `json:"sgx_type"`
}

func showFields(r *verify.Result) quoteFields {
	f := quoteFields{
		CollateralExpiresAt: r.CollateralExpiresAt, Debug: r.Debug, FMSPC: r.FMSPC, ISVProdID: r.ISVProdID, ISVSVN: r.ISVSVN,
		MRConfigID: r.MRConfigID, MREnclave: r.MREnclave, MROwner: r.MROwner, MROwnerConfig: r.MROwnerConfig, MRSeam: r.MRSeam,
		MRSigner: r.MRSigner, MRTD: r.MRTD, QuoteVersion: r.Detail.QuoteVersion, ReportData: r.ReportData,
		RTMR0: r.RTMR0, RTMR1: r.RTMR1, RTMR2: r.RTMR2, RTMR3: r.RTMR3, TDAttributes: r.TDAttributes, TEE: r.TEE,
		TEETCBSVN: r.TEETCBSVN, TrailingBytes: r.Detail.TrailingBytes, result: r,
	}
	if p := r.Detail.PCK; p != nil {
		f.PCK = &pckFields{CAType: p.CAType, CompSVN: p.CompSVN, CPUSVN: p.CPUSVN, FMSPC: p.FMSPC, IssuerCN: p.IssuerCN,
			NotAfter: p.NotAfter, NotBefore: p.NotBefore, PCEID: p.PCEID, PCESVN: p.PCESVN, SGXType: p.SGXType}
	}
	if r.Detail.TDRelaunchCheck != "" {
		f.TDReportVersion = "1.5"
	}
	return f
}

func (f quoteFields) writeText(w io.Writer) {
	field(w, "tee", f.TEE)
	field(w, "quote_version", f.QuoteVersion)
	writeExpiry(w, f.result)
	writeMeasurements(w, f.result)
	field(w, "trailing_bytes", f.TrailingBytes)
	if p := f.PCK; p != nil {
		fmt.Fprintf(w, "%-22s fmspc=%v pceid=%v pcesvn=%v ca=%v not_after=%v\n", "pck:", p.FMSPC, p.PCEID, p.PCESVN, p.CAType, p.NotAfter.Format(time.RFC3339Nano))
	}
}

// writeMeasurements writes the measurement lines that show and verify share.
func writeMeasurements(w io.Writer, r *verify.Result) {
	optional(w, "fmspc", r.FMSPC)
	optional(w, "mr_enclave", r.MREnclave)
	optional(w, "mr_signer", r.MRSigner)
	if r.ISVProdID != nil {
		field(w, "isv_prod_id", *r.ISVProdID)
	}
	if r.ISVSVN != nil {
		field(w, "isv_svn", *r.ISVSVN)
	}
	for _, m := range []struct{ k, v string }{{"mr_td", r.MRTD}, {"rtmr0", r.RTMR0}, {"rtmr1", r.RTMR1}, {"rtmr2", r.RTMR2},
		{"rtmr3", r.RTMR3}, {"td_attributes", r.TDAttributes}, {"tee_tcb_svn", r.TEETCBSVN}, {"mr_seam", r.MRSeam},
		{"mr_config_id", r.MRConfigID}, {"mr_owner", r.MROwner}, {"mr_owner_config", r.MROwnerConfig}} {
		optional(w, m.k, m.v)
	}
	field(w, "debug", r.Debug)
	optional(w, "report_data", r.ReportData)
}

func writeExpiry(w io.Writer, r *verify.Result) {
	if r.CollateralExpiresAt != nil {
		field(w, "collateral_expires_at", r.CollateralExpiresAt.Format(time.RFC3339Nano))
	}
}

// field writes one "key: value" line of the text output.
func field(w io.Writer, key string, v any) { fmt.Fprintf(w, "%-22s %v\n", key+":", v) }

// optional writes a line only for a value that is set (omitted in JSON too).
func optional(w io.Writer, key, v string) {
	if v != "" {
		field(w, key, v)
	}
}

// orNil and listOrNil print what JSON says null for as <nil>.
func orNil(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func listOrNil(l []string) any {
	if l == nil {
		return nil
	}
	return l
}
