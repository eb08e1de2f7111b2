package attestapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/ppml-project/ppml/api/native"
	"github.com/ppml-project/ppml/attestation"
	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/kms"
	"github.com/ppml-project/ppml/metrics"
)

// Native serves /v1/attestation/*.
type Native struct {
	KMS     *kms.Service
	AS      *attestation.Service
	Metrics *metrics.Metrics
}

// Routes returns the native routes:
//
//	GET  /v1/attestation/nonce          app auth; {"nonce": b64, "expires_at"}
//	POST /v1/attestation/verify         app auth; {quote, nonce, runtime_data, policy_id} → {"token", "claims"}
//	GET  /v1/attestation/jwks           public; the token verification keys
//	POST /v1/attestation/policies       app auth; body = quote/policy JSON → {"policy_id"}
//	GET  /v1/attestation/policies/{id}  app auth; the stored policy
func (n Native) Routes() []native.Route {
	return []native.Route{
		{Pattern: "GET /v1/attestation/nonce", Handler: n.handle("AttestationNonce", true, n.nonce)},
		{Pattern: "POST /v1/attestation/verify", Handler: n.handle("AttestationVerify", true, n.verify)},
		{Pattern: "GET /v1/attestation/jwks", Handler: n.handle("AttestationJWKS", false, n.jwks)},
		{Pattern: "POST /v1/attestation/policies", Handler: n.handle("CreatePolicy", true, n.createPolicy)},
		{Pattern: "GET /v1/attestation/policies/{id}", Handler: n.handle("GetPolicy", true, n.getPolicy)},
	}
}

type handlerFunc func(r *http.Request, appID string) (any, error)

func (n Native) handle(action string, authed bool, fn handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		res, err := n.serve(r, authed, fn)
		n.Metrics.Observe("native", action, fault.CodeOf(err), time.Since(start))
		if err != nil {
			writeError(w, err)
			return
		}
		native.WriteJSON(w, http.StatusOK, res)
	}
}

func (n Native) serve(r *http.Request, authed bool, fn handlerFunc) (any, error) {
	if !authed {
		return fn(r, "")
	}
	appID, apiKey, ok := r.BasicAuth()
	if !ok || appID == "" || apiKey == "" {
		return nil, &fault.Error{Kind: fault.Unauthenticated, Code: "missing_credentials", Msg: "send the app id and API key as HTTP Basic credentials (ppml CLI: --app-id and --api-key-file)"}
	}
	if err := n.KMS.AuthenticateApp(r.Context(), appID, apiKey); err != nil {
		return nil, err
	}
	return fn(r, appID)
}

// writeError is native.WriteError plus the list of reasons of a refusal.
func writeError(w http.ResponseWriter, err error) {
	var rf *attestation.Refusal
	if errors.As(err, &rf) {
		native.WriteJSON(w, native.StatusOf(err), map[string]any{"error": map[string]any{
			"code": rf.Code, "message": rf.Error(), "reasons": rf.Reasons}})
		return
	}
	native.WriteError(w, err)
}

func (n Native) nonce(r *http.Request, appID string) (any, error) {
	return n.AS.NewNonce(r.Context(), appID)
}

// VerifyRequest is the body of POST /v1/attestation/verify (binary fields
// are standard base64).
type VerifyRequest struct {
	Quote       []byte `json:"quote"`
	Nonce       []byte `json:"nonce"`
	RuntimeData []byte `json:"runtime_data"`
	PolicyID    string `json:"policy_id"`
}

func (n Native) verify(r *http.Request, appID string) (any, error) {
	var req VerifyRequest
	if err := native.Decode(r, &req); err != nil {
		return nil, err
	}
	att, err := n.AS.Attest(r.Context(), attestation.Request{AppID: appID, Quote: req.Quote, Nonce: req.Nonce,
		RuntimeData: req.RuntimeData, PolicyID: req.PolicyID, API: "native", Remote: r.RemoteAddr})
	if err != nil {
		return nil, err
	}
	return map[string]any{"token": att.Token, "claims": att.Claims}, nil
}

func (n Native) jwks(r *http.Request, _ string) (any, error) {
	return n.AS.JWKS(r.Context())
}

func (n Native) createPolicy(r *http.Request, appID string) (any, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	p, err := attestation.ParsePolicy(body)
	if err != nil {
		return nil, err
	}
	sp, err := n.AS.CreatePolicy(r.Context(), appID, "native", p)
	if err != nil {
		return nil, err
	}
	return sp, nil
}

func (n Native) getPolicy(r *http.Request, appID string) (any, error) {
	return n.AS.Policy(r.Context(), appID, r.PathValue("id"))
}
