package verify

import (
	"github.com/ppml-project/ppml/quote/abi"
)

// Inspect parses a quote without verifying anything and returns its
// measurements and, when the PCK chain decodes, the PCK facts (FMSPC, CA
// type) needed to select collateral. Verified is always false and the
// result says nothing about authenticity.
func Inspect(raw []byte) (*Result, error) {
	q, err := abi.ParseQuote(raw)
	if err != nil {
		return nil, err
	}
	return InspectQuote(q)
}

// InspectQuote is Inspect of a parsed quote; the Result is always non-nil.
func InspectQuote(q *abi.Quote) (*Result, error) {
	return inspect(q, decodeChain(q.PCKChainPEM))
}

// Inspect is InspectQuote with the PCK chain read from the verifier's
// cache, and the result marked simulated as the verifier's results are.
func (v *Verifier) Inspect(q *abi.Quote) (*Result, error) {
	res, err := inspect(q, v.chainEntry(q.PCKChainPEM).parts)
	res.Simulated = v.simulated
	return res, err
}

func inspect(q *abi.Quote, parts *chainParts) (*Result, error) {
	res := &Result{AdvisoryIDs: []string{}}
	res.Detail.Checks = map[string]bool{}
	res.fillMeasurements(q)
	c, e := parts.chain(false)
	if e != nil {
		return res, e
	}
	pc := &pckChain{certs: c.Certs, ext: c.Ext, caType: c.CAType}
	res.FMSPC = c.FMSPC
	res.Detail.PCK = pc.detail()
	return res, nil
}
