package verify

import (
	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/collateral"
	"github.com/ppml-project/ppml/quote/pck"
)

// Inspect parses a quote without verifying anything and returns its
// measurements and, when the PCK chain decodes, the PCK facts (FMSPC, CA
// type) needed to select collateral. Verified is always false and the
// result says nothing about authenticity.
func Inspect(raw []byte) (*Result, error) {
	res := &Result{AdvisoryIDs: []string{}}
	res.Detail.Checks = map[string]bool{}
	q, err := abi.ParseQuote(raw)
	if err != nil {
		return nil, err
	}
	res.fillMeasurements(q)
	certs, err := collateral.ParseChain(q.PCKChainPEM)
	if err != nil {
		return res, fail(FailPCKChain, "PCK certificate chain: %v", err)
	}
	if len(certs) < 2 {
		return res, fail(FailPCKChain, "PCK certificate chain has %d certificates, want 3", len(certs))
	}
	ext, err := pck.FromCertificate(certs[0])
	if err != nil {
		return res, fail(FailPCKChain, "%v", err)
	}
	pc := &pckChain{certs: certs, ext: ext}
	switch certs[1].Subject.CommonName {
	case CNPlatformCA:
		pc.caType = CAPlatform
	case CNProcessorCA:
		pc.caType = CAProcessor
	}
	res.FMSPC = hx(ext.FMSPC[:])
	res.Detail.PCK = pc.detail()
	return res, nil
}
