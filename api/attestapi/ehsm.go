// Package attestapi serves the Attestation Service on the eHSM protocol
// (the quote actions of ehsm-protocol.md §8, as an ehsm.QuoteActions) and on
// the native /v1/attestation routes.
package attestapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/ppml-project/ppml/enclave"
	"github.com/ppml-project/ppml/fault"

	"github.com/ppml-project/ppml/api/ehsm"
	"github.com/ppml-project/ppml/attestation"
	"github.com/ppml-project/ppml/quote/policy"
	"github.com/ppml-project/ppml/wire/ehsmsig"
)

// Payload limits (ehsm-protocol.md §11).
const (
	maxQuoteB64 = 10924
	maxNonceB64 = 4096
)

var (
	policyIDPattern = regexp.MustCompile(`^[a-z0-9]{8}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{12}$`)
	base64Pattern   = regexp.MustCompile(`^[A-Za-z0-9+/]+={0,2}$`)
)

// EHSMQuotes implements ehsm.QuoteActions.
type EHSMQuotes struct {
	AS *attestation.Service
	// BindNonce requires VerifyQuote's report_data to start with
	// SHA-256(base64-decoded nonce) (ehsm-protocol.md §8.1, opt-in: BigDL
	// always sends the nonce "test" and a constant report data).
	BindNonce bool
	// Self quotes this server (GenerateQuote); nil: not in an enclave.
	Self enclave.Quoter
}

var _ ehsm.QuoteActions = EHSMQuotes{}

// Actions lists the served actions.
func (EHSMQuotes) Actions() []string {
	return []string{"UploadQuotePolicy", "GetQuotePolicy", "VerifyQuote", "GenerateQuote"}
}

func invalid(code, format string, a ...any) error {
	return &fault.Error{Kind: fault.Invalid, Code: code, Msg: fmt.Sprintf(format, a...)}
}

func strField(p map[string]any, k string, required bool, max int) (string, error) {
	v, ok := p[k]
	if !ok || v == nil || v == "" {
		if required {
			return "", invalid("missing_parameter", "Missing required parameters, The %s cannot be empty.", k)
		}
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", invalid("invalid_parameter", "Parameter invalid, The %s must be a string.", k)
	}
	if max > 0 && len(s) > max {
		return "", invalid("invalid_parameter", "Parameter invalid, The %s is longer than %d characters.", k, max)
	}
	return s, nil
}

func b64Field(p map[string]any, k string, max int) ([]byte, string, error) {
	s, err := strField(p, k, true, max)
	if err != nil {
		return nil, "", err
	}
	b, derr := base64.StdEncoding.DecodeString(s)
	if len(s)%4 != 0 || !base64Pattern.MatchString(s) || derr != nil {
		return nil, "", invalid("invalid_parameter", "Parameter invalid, The %s must be standard base64 with padding.", k)
	}
	return b, s, nil
}

func hex32(p map[string]any, k string) (string, error) {
	s, err := strField(p, k, true, 0)
	if err != nil {
		return "", err
	}
	b, err := hex.DecodeString(s)
	if len(s) != 64 || err != nil || len(b) != 32 {
		return "", invalid("invalid_parameter", "Parameter invalid, The %s must be 64 hex characters (32 bytes).", k)
	}
	return strings.ToLower(s), nil
}

func policyID(p map[string]any, required bool) (string, error) {
	id, err := strField(p, "policyId", required, 0)
	if err != nil || id == "" {
		return id, err
	}
	if !policyIDPattern.MatchString(id) {
		return "", invalid("invalid_parameter", "Parameter invalid, The policyId must be a lower-case UUID.")
	}
	return id, nil
}

// Handle runs a quote action for an authenticated app.
func (q EHSMQuotes) Handle(ctx context.Context, appID, apiKey, action string, p map[string]any) (map[string]any, string, error) {
	switch action {
	case "UploadQuotePolicy":
		enc, err := hex32(p, "mr_enclave")
		if err != nil {
			return nil, "", err
		}
		sig, err := hex32(p, "mr_signer")
		if err != nil {
			return nil, "", err
		}
		sp, err := q.AS.CreatePolicy(ctx, appID, "ehsm", &policy.Policy{TEE: "sgx", MREnclave: []string{enc}, MRSigner: []string{sig}})
		if err != nil {
			return nil, "", err
		}
		return map[string]any{"policyId": sp.ID}, "Upload quote policy success.", nil
	case "GetQuotePolicy":
		id, err := policyID(p, true)
		if err != nil {
			return nil, "", err
		}
		sp, err := q.AS.Policy(ctx, appID, id)
		if fault.KindOf(err) == fault.NotFound {
			return map[string]any{"policyId": id}, "Query quote policy success.", nil // upstream: only policyId
		}
		if err != nil {
			return nil, "", err
		}
		out := map[string]any{"policyId": sp.ID, "createTime": sp.CreatedAt.UnixMilli()}
		if len(sp.Policy.MREnclave) > 0 {
			out["mr_enclave"] = strings.ToLower(sp.Policy.MREnclave[0])
		}
		if len(sp.Policy.MRSigner) > 0 {
			out["mr_signer"] = strings.ToLower(sp.Policy.MRSigner[0])
		}
		if sp.Origin != "ehsm" {
			out["origin"] = sp.Origin
		}
		return out, "Query quote policy success.", nil
	case "VerifyQuote":
		raw, _, err := b64Field(p, "quote", maxQuoteB64)
		if err != nil {
			return nil, "", err
		}
		nonceRaw, nonce, err := b64Field(p, "nonce", maxNonceB64)
		if err != nil {
			return nil, "", err
		}
		id, err := policyID(p, false)
		if err != nil {
			return nil, "", err
		}
		var sp *attestation.StoredPolicy
		if id != "" {
			if sp, err = q.AS.Policy(ctx, appID, id); err != nil {
				if fault.KindOf(err) == fault.NotFound {
					return nil, "", invalid("policy_not_found", "Invalid  policyId.")
				}
				return nil, "", err
			}
		}
		var bind []byte
		if q.BindNonce {
			bind = nonceRaw
		}
		v := q.AS.VerifyLegacy(ctx, "ehsm", appID, "", raw, sp, bind)
		res := map[string]any{"result": json.Number(strconv.Itoa(v.QVL)), "nonce": nonce}
		if sp != nil {
			if len(sp.Policy.MREnclave) > 0 {
				res["mr_enclave"] = strings.ToLower(sp.Policy.MREnclave[0])
			}
			if len(sp.Policy.MRSigner) > 0 {
				res["mr_signer"] = strings.ToLower(sp.Policy.MRSigner[0])
			}
		}
		if v.Result != nil && v.Result.Simulated {
			res["simulated"] = true
		}
		if v.Debug {
			res["debug"] = true
		}
		res["sign"] = ehsmsig.Sign([]byte(apiKey), ehsmsig.Canonical(res))
		msg := "successful"
		if v.Message != "" {
			msg = v.Message
		}
		return res, msg, nil
	case "GenerateQuote":
		if q.Self == nil {
			return nil, "", &fault.Error{Kind: fault.Unsupported, Code: "unsupported_action",
				Msg: "GenerateQuote is not supported: this server does not run inside an enclave (--self-attestation), so it has no quote of its own to bind the challenge to"}
		}
		challengeRaw, challenge, err := b64Field(p, "challenge", maxNonceB64)
		if err != nil {
			return nil, "", err
		}
		// Unlike upstream (all-zero report data), bind the challenge:
		// report_data = SHA-256(base64-decoded challenge) || zeros.
		var rd [64]byte
		h := sha256.Sum256(challengeRaw)
		copy(rd[:], h[:])
		quote, err := q.Self.Quote(rd)
		if err != nil {
			return nil, "", &fault.Error{Kind: fault.Internal, Code: "self_quote", Msg: "Server exception. [self_quote] could not produce this server's quote: " + err.Error()}
		}
		res := map[string]any{"challenge": challenge, "quote": base64.StdEncoding.EncodeToString(quote)}
		if q.Self.Simulated() {
			res["simulated"] = true
		}
		return res, "successful", nil
	}
	return nil, "", &fault.Error{Kind: fault.Unsupported, Code: "unknown_action", Msg: "unknown quote action " + action}
}
