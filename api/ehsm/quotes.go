package ehsm

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/ppml-project/ppml/attestation"
	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/quote/policy"
	"github.com/ppml-project/ppml/wire/ehsmsig"
)

// Payload limits of the quote actions (ehsm-protocol.md §11).
const (
	maxQuoteB64 = 10924
	maxNonceB64 = 4096
)

// quoteAction serves one Attestation Service action (ehsm-protocol.md §8)
// for an authenticated app; apiKey signs the VerifyQuote result.
type quoteAction func(ctx context.Context, appID, apiKey string, p payload) (map[string]any, string, error)

// quoteFields are checked after the signature, like every quote action
// always was; the key actions check theirs before.
var quoteFields = map[string][]field{
	"UploadQuotePolicy": {{name: "mr_enclave", typ: tHex32, required: true}, {name: "mr_signer", typ: tHex32, required: true}},
	"GetQuotePolicy":    {{name: "policyId", typ: tPolicyID, required: true}},
	"VerifyQuote": {{name: "quote", typ: tBase64, required: true, max: maxQuoteB64}, {name: "nonce", typ: tBase64, required: true, max: maxNonceB64},
		{name: "policyId", typ: tPolicyID}},
	"GenerateQuote": {{name: "challenge", typ: tBase64, required: true, max: maxNonceB64}},
}

// quoteActions returns the quote actions; none without an attestation service.
func (h *Handler) quoteActions() map[string]quoteAction {
	as := h.attestation
	if as == nil {
		return nil
	}
	return map[string]quoteAction{
		"UploadQuotePolicy": func(ctx context.Context, appID, _ string, p payload) (map[string]any, string, error) {
			if err := validate(p, quoteFields["UploadQuotePolicy"]); err != nil {
				return nil, "", err
			}
			sp, err := as.CreatePolicy(ctx, appID, "ehsm", &policy.Policy{TEE: "sgx",
				MREnclave: []string{strings.ToLower(p.str("mr_enclave"))}, MRSigner: []string{strings.ToLower(p.str("mr_signer"))}})
			if err != nil {
				return nil, "", err
			}
			return map[string]any{"policyId": sp.ID}, "Upload quote policy success.", nil
		},
		"GetQuotePolicy": func(ctx context.Context, appID, _ string, p payload) (map[string]any, string, error) {
			if err := validate(p, quoteFields["GetQuotePolicy"]); err != nil {
				return nil, "", err
			}
			id := p.str("policyId")
			sp, err := as.Policy(ctx, appID, id)
			if fault.KindOf(err) == fault.NotFound {
				return map[string]any{"policyId": id}, "Query quote policy success.", nil // upstream: only policyId
			}
			if err != nil {
				return nil, "", err
			}
			out := map[string]any{"policyId": sp.ID, "createTime": sp.CreatedAt.UnixMilli()}
			addMeasurements(out, sp)
			if sp.Origin != "ehsm" {
				out["origin"] = sp.Origin
			}
			return out, "Query quote policy success.", nil
		},
		"VerifyQuote": func(ctx context.Context, appID, apiKey string, p payload) (map[string]any, string, error) {
			if err := validate(p, quoteFields["VerifyQuote"]); err != nil {
				return nil, "", err
			}
			var sp *attestation.StoredPolicy
			if id := p.str("policyId"); id != "" {
				var err error
				if sp, err = as.Policy(ctx, appID, id); err != nil {
					if fault.KindOf(err) == fault.NotFound {
						return nil, "", fault.Invalidf("policy_not_found", "Invalid  policyId.")
					}
					return nil, "", err
				}
			}
			var bind []byte
			if h.bindNonce {
				bind = p.bytes("nonce")
			}
			v := as.VerifyLegacy(ctx, "ehsm", appID, "", p.bytes("quote"), sp, bind)
			if v.Err != nil {
				return nil, "", v.Err
			}
			res := map[string]any{"result": json.Number(strconv.Itoa(v.QVL)), "nonce": p.str("nonce")}
			if sp != nil {
				addMeasurements(res, sp)
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
		},
		"GenerateQuote": func(ctx context.Context, _, _ string, p payload) (map[string]any, string, error) {
			if h.self == nil {
				return nil, "", &fault.Error{Kind: fault.Unsupported, Code: "unsupported_action",
					Msg: "GenerateQuote is not supported: this server does not run inside an enclave (--self-attestation), so it has no quote of its own to bind the challenge to"}
			}
			if err := validate(p, quoteFields["GenerateQuote"]); err != nil {
				return nil, "", err
			}
			// Unlike upstream (all-zero report data), bind the challenge
			// and this server's TLS key (RA-TLS): report_data =
			// SHA-256(base64-decoded challenge) || SHA-256(TLS SPKI), the
			// second half zero when the server has no TLS key of its own.
			var rd [64]byte
			sum := sha256.Sum256(p.bytes("challenge"))
			copy(rd[:], sum[:])
			copy(rd[32:], h.selfKeyHash[:])
			quote, err := h.self.Quote(rd)
			if err != nil {
				return nil, "", &fault.Error{Kind: fault.Internal, Code: "self_quote", Msg: "Server exception. [self_quote] could not produce this server's quote: " + err.Error()}
			}
			res := map[string]any{"challenge": p.str("challenge"), "quote": base64.StdEncoding.EncodeToString(quote)}
			if h.self.Simulated() {
				res["simulated"] = true
			}
			return res, "successful", nil
		},
	}
}

// addMeasurements adds an eHSM policy's (first) measurements, lower case.
func addMeasurements(out map[string]any, sp *attestation.StoredPolicy) {
	if len(sp.Policy.MREnclave) > 0 {
		out["mr_enclave"] = strings.ToLower(sp.Policy.MREnclave[0])
	}
	if len(sp.Policy.MRSigner) > 0 {
		out["mr_signer"] = strings.ToLower(sp.Policy.MRSigner[0])
	}
}
