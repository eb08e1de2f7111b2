package agent

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/policy"
	"github.com/ppml-project/ppml/quote/source"
	"github.com/ppml-project/ppml/quote/verify"
)

// ServerCheck attests the attestation service itself before trusting it
// (BigDL's ATTESTATION_CHALLENGE "bi-attestation"): the service quotes
// itself over SHA-256(challenge) with eHSM GenerateQuote, and the quote is
// verified here, with this side's trust anchor and collateral.
type ServerCheck struct {
	Challenge     string         // base64, as BigDL passes ATTESTATION_CHALLENGE
	SimDir        string         // trust the simulation PKI in this directory (testing only)
	CollateralDir string         // offline collateral for Intel quotes
	PCCSURL       string         // or a PCCS / Intel PCS v4 endpoint
	Policy        *policy.Policy // expectations on the server's measurements (default: policy defaults)
	Now           func() time.Time
}

// Run asks for the server's quote and verifies it.
func (sc *ServerCheck) Run(ctx context.Context, e *client.EHSM) (*verify.Result, error) {
	challenge, err := base64.StdEncoding.DecodeString(sc.Challenge)
	if err != nil || len(challenge) == 0 {
		return nil, errors.New("ATTESTATION_CHALLENGE must be non-empty standard base64 (eHSM's GenerateQuote takes it so)")
	}
	res, err := e.Call(ctx, "GenerateQuote", map[string]any{"challenge": sc.Challenge})
	if err != nil {
		return nil, fmt.Errorf("asking the attestation service for its own quote: %w", err)
	}
	if echoed, _ := res["challenge"].(string); subtle.ConstantTimeCompare([]byte(echoed), []byte(sc.Challenge)) != 1 {
		return nil, errors.New("the attestation service did not echo the challenge")
	}
	qb64, _ := res["quote"].(string)
	quote, err := base64.StdEncoding.DecodeString(qb64)
	if err != nil || len(quote) == 0 {
		return nil, errors.New("the attestation service returned no quote")
	}
	now := sc.Now
	if now == nil {
		now = time.Now
	}
	q, err := abi.ParseQuote(quote)
	cfg := source.Config{Now: now}
	p := sc.Policy
	if sc.SimDir != "" {
		root, s, lerr := source.Anchor(sc.SimDir, "")
		if lerr != nil {
			return nil, lerr
		}
		if err != nil {
			return nil, fmt.Errorf("the attestation service's quote: %w", err)
		}
		cfg.Root, cfg.Collateral = root, source.SimCollateral{Sim: s}
		if p == nil {
			p = &policy.Policy{AllowSimulated: true}
		}
	} else {
		if err != nil {
			return nil, fmt.Errorf("the attestation service's quote does not parse: %v", err)
		}
		cs := source.CollateralSettings{Dir: sc.CollateralDir, PCCSURL: sc.PCCSURL, Now: now}
		if cs.Dir != "" {
			cs.PCCSURL = "" // the directory wins, nothing falls back to the network
		}
		cols, err := cs.Open()
		if err != nil {
			return nil, err
		}
		if c, ok := cols.(*source.Collateral); ok && c.Empty() {
			return nil, errors.New("to verify the attestation service's quote, give its collateral: --server-collateral-dir or --server-pccs-url")
		}
		cfg.Collateral = cols
	}
	if p == nil {
		p = &policy.Policy{}
	}
	src, err := source.New(cfg)
	if err != nil {
		return nil, err
	}
	r, err := src.Verify(ctx, q)
	var se *source.Error
	if errors.As(err, &se) {
		if se.Reason == source.ReasonChain {
			return nil, fmt.Errorf("the attestation service's quote does not parse: %v", se)
		}
		return nil, se
	}
	if err != nil {
		return r, fmt.Errorf("the attestation service's quote does not verify: %w", err)
	}
	want := sha256.Sum256(challenge)
	rd, _ := hex.DecodeString(r.ReportData)
	if len(rd) < 32 || subtle.ConstantTimeCompare(rd[:32], want[:]) != 1 {
		return r, errors.New("the attestation service's quote does not bind the challenge (report_data is not SHA-256 of it): a replayed or unrelated quote")
	}
	if d := p.Evaluate(r); !d.Accepted {
		return r, fmt.Errorf("the attestation service runs code the server policy refuses: %v", d.Reasons)
	}
	return r, nil
}
