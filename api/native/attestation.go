package native

import (
	"errors"
	"net/http"

	"github.com/ppml-project/ppml/api/httputil"
	"github.com/ppml-project/ppml/attestation"
	"github.com/ppml-project/ppml/kms"
)

// attestationRoutes serves the Attestation Service:
//
//	GET  /v1/attestation/nonce          app auth; {"nonce": b64, "expires_at"}
//	POST /v1/attestation/verify         app auth; {quote, nonce, runtime_data, policy_id} → {"token", "claims"}
//	GET  /v1/attestation/jwks           public; the token verification keys
//	POST /v1/attestation/policies       app auth; body = quote/policy JSON → {"policy_id"}
//	GET  /v1/attestation/policies/{id}  app auth; the stored policy
func (h *Handler) attestationRoutes(as *attestation.Service) {
	h.handle("GET /v1/attestation/nonce", "AttestationNonce", h.authed(func(r *http.Request, c kms.Caller) (any, error) {
		return as.NewNonce(r.Context(), c.ID)
	}))
	h.handle("POST /v1/attestation/verify", "AttestationVerify", h.authed(func(r *http.Request, c kms.Caller) (any, error) {
		var req VerifyRequest
		if err := Decode(r, &req); err != nil {
			return nil, err
		}
		att, err := as.Attest(r.Context(), attestation.Request{AppID: c.ID, Quote: req.Quote, Nonce: req.Nonce,
			RuntimeData: req.RuntimeData, PolicyID: req.PolicyID, API: "native", Remote: r.RemoteAddr})
		if err != nil {
			return nil, err
		}
		return map[string]any{"token": att.Token, "claims": att.Claims}, nil
	}))
	h.handle("GET /v1/attestation/jwks", "AttestationJWKS", func(r *http.Request, _ kms.Caller) (any, error) {
		return as.JWKS(r.Context())
	})
	h.handle("POST /v1/attestation/policies", "CreatePolicy", h.authed(func(r *http.Request, c kms.Caller) (any, error) {
		body, err := readBody(r)
		if err != nil {
			return nil, err
		}
		p, err := attestation.ParsePolicy(body)
		if err != nil {
			return nil, err
		}
		return as.CreatePolicy(r.Context(), c.ID, "native", p)
	}))
	h.handle("GET /v1/attestation/policies/{id}", "GetPolicy", h.authed(func(r *http.Request, c kms.Caller) (any, error) {
		return as.Policy(r.Context(), c.ID, r.PathValue("id"))
	}))
}

// VerifyRequest is the body of POST /v1/attestation/verify (binary fields
// are standard base64).
type VerifyRequest struct {
	Quote       []byte `json:"quote"`
	Nonce       []byte `json:"nonce"`
	RuntimeData []byte `json:"runtime_data"`
	PolicyID    string `json:"policy_id"`
}

// writeError is WriteError plus the list of reasons of an attestation refusal.
func writeError(w http.ResponseWriter, err error) {
	var rf *attestation.Refusal
	if errors.As(err, &rf) {
		httputil.SetRetryAfter(w.Header(), err)
		WriteJSON(w, StatusOf(err), map[string]any{"error": map[string]any{
			"code": rf.Code, "message": rf.Error(), "reasons": rf.Reasons}})
		return
	}
	WriteError(w, err)
}
