package main

import (
	"github.com/ppml-project/ppml/internal/jsontext"
	"github.com/ppml-project/ppml/quote/policy"
	"github.com/ppml-project/ppml/quote/verify"
)

// verifyOutput is what "ppml quote verify" prints: the verdict and, with a
// policy, its decision. The text form leaves out the diagnostics (detail).
type verifyOutput struct {
	*verify.Result
	Policy *policy.Decision `json:"policy,omitempty"`
}

func (o verifyOutput) text() (*jsontext.Object, error) {
	t, err := jsontext.Of(o)
	if err != nil {
		return nil, err
	}
	t.Delete("detail")
	return t, nil
}

// verdictKeys are the members of verify.Result that judge the quote: "ppml
// quote show" verifies nothing, so it prints none of them.
var verdictKeys = []string{"verified", "simulated", "tcb_status", "advisory_ids", "crl_checked", "collateral_expired", "failure", "error", "detail"}

// shown is what "ppml quote show" prints: the facts of a quote that was not
// verified, with the parse facts of detail as top-level members.
type shown struct {
	*verify.Result
	QuoteVersion    int               `json:"quote_version"`
	TrailingBytes   int               `json:"trailing_bytes"`
	PCK             *verify.PCKDetail `json:"pck,omitempty"`
	TDReportVersion string            `json:"td_report_version,omitempty"`
}

// showOutput is shown without the verdict; its JSON keys are sorted.
func showOutput(r *verify.Result) (*jsontext.Object, error) {
	s := shown{Result: r, QuoteVersion: r.Detail.QuoteVersion, TrailingBytes: r.Detail.TrailingBytes, PCK: r.Detail.PCK}
	if r.Detail.TDRelaunchCheck != "" { // only TDX 1.5 reports carry the relaunch check
		s.TDReportVersion = "1.5"
	}
	o, err := jsontext.Of(s)
	if err != nil {
		return nil, err
	}
	o.Delete(verdictKeys...)
	return o, nil
}
