// Package native serves ppml's own JSON API under /v1: resource-oriented
// routes, HTTP Basic authentication with the app id and API key, real HTTP
// statuses and errors of the form {"error": {"code", "message"}}.
package native

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ppml-project/ppml/api/httputil"
	"github.com/ppml-project/ppml/attestation"
	"github.com/ppml-project/ppml/docs"
	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/internal/shamir"
	"github.com/ppml-project/ppml/kms"
	"github.com/ppml-project/ppml/kms/rootkey"
	"github.com/ppml-project/ppml/metrics"
)

// Handler serves /v1/.
type Handler struct {
	svc     *kms.Service
	root    *rootkey.Keyring
	metrics *metrics.Metrics
	mux     *http.ServeMux
	routes  []string // the registered patterns, for the OpenAPI check
}

// Config holds the handler's collaborators.
type Config struct {
	KMS     *kms.Service
	Root    *rootkey.Keyring // its state answers GET /v1/operator/status
	Metrics *metrics.Metrics
	// Attestation serves /v1/attestation/*; nil: those routes are unknown.
	Attestation *attestation.Service
}

// New returns the native API handler.
func New(cfg Config) *Handler {
	h := &Handler{svc: cfg.KMS, root: cfg.Root, metrics: cfg.Metrics, mux: http.NewServeMux()}
	h.handle("POST /v1/apps", "Enroll", h.enroll)
	h.handle("POST /v1/keys", "CreateKey", h.authed(h.createKey))
	h.handle("GET /v1/keys", "ListKeys", h.authed(h.listKeys))
	h.handle("GET /v1/keys/{id}", "DescribeKey", h.authed(h.describeKey))
	h.handle("POST /v1/keys/{id}/rotate", "RotateKey", h.authed(h.rotateKey))
	h.handle("POST /v1/keys/{id}/enable", "EnableKey", h.authed(h.setEnabled(true)))
	h.handle("POST /v1/keys/{id}/disable", "DisableKey", h.authed(h.setEnabled(false)))
	h.handle("POST /v1/keys/{id}/schedule-deletion", "ScheduleKeyDeletion", h.authed(h.scheduleDeletion))
	h.handle("POST /v1/keys/{id}/cancel-deletion", "CancelKeyDeletion", h.authed(h.cancelDeletion))
	h.handle("POST /v1/keys/{id}/encrypt", "Encrypt", h.authed(h.encrypt))
	h.handle("POST /v1/keys/{id}/decrypt", "Decrypt", h.authed(h.decrypt))
	h.handle("POST /v1/keys/{id}/datakey", "GenerateDataKey", h.authed(h.dataKey))
	h.handle("POST /v1/keys/{id}/release", "ReleaseKey", h.authed(h.release))
	h.handle("GET /v1/operator/status", "Status", h.status)
	h.handle("POST /v1/operator/init", "InitRootKey", h.admin(h.initRoot))
	h.handle("POST /v1/operator/unseal", "Unseal", h.admin(h.unseal))
	h.handle("POST /v1/operator/rotate", "RotateRootKey", h.admin(h.rotateRoot))
	h.handle("POST /v1/operator/rekey", "PrepareRekey", h.admin(h.prepareRekey))
	h.handle("POST /v1/operator/rekey/commit", "CommitRekey", h.admin(h.commitRekey))
	h.handle("POST /v1/operator/rewrap", "StartRewrap", h.admin(h.startRewrap))
	h.handle("GET /v1/operator/rewrap", "RewrapStatus", h.admin(h.rewrapStatus))
	if cfg.Attestation != nil {
		h.attestationRoutes(cfg.Attestation)
	}
	h.openAPIRoute()
	h.mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, &fault.Error{Kind: fault.NotFound, Code: "unknown_route", Msg: fmt.Sprintf("no API route %s %s; see docs/api.md", r.Method, r.URL.Path)})
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

type handlerFunc func(r *http.Request, c kms.Caller) (any, error)

// Routes returns the registered route patterns ("GET /v1/keys/{id}").
func (h *Handler) Routes() []string { return append([]string(nil), h.routes...) }

func (h *Handler) handle(pattern, action string, fn handlerFunc) {
	h.routes = append(h.routes, pattern)
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		res, err := fn(r, kms.Caller{API: "native", Remote: r.RemoteAddr})
		h.metrics.Observe("native", action, fault.CodeOf(err), time.Since(start))
		if err != nil {
			writeError(w, err)
			return
		}
		WriteJSON(w, http.StatusOK, res)
	})
}

// authed authenticates the app with HTTP Basic (app id, API key).
func (h *Handler) authed(fn handlerFunc) handlerFunc {
	return func(r *http.Request, c kms.Caller) (any, error) {
		appID, apiKey, ok := r.BasicAuth()
		if !ok || appID == "" || apiKey == "" {
			return nil, &fault.Error{Kind: fault.Unauthenticated, Code: "missing_credentials", Msg: "send the app id and API key as HTTP Basic credentials (ppml CLI: --app-id and --api-key-file)"}
		}
		if err := h.svc.AuthenticateApp(r.Context(), appID, apiKey); err != nil {
			return nil, err
		}
		c.ID = appID
		return fn(r, c)
	}
}

func (h *Handler) admin(fn handlerFunc) handlerFunc {
	return func(r *http.Request, c kms.Caller) (any, error) {
		if err := h.svc.CheckAdmin(r.Context(), httputil.BearerToken(r)); err != nil {
			return nil, err
		}
		c.ID = "admin"
		return fn(r, c)
	}
}

// Decode reads a JSON body into v strictly: unknown fields, trailing data,
// wrong types and bodies over 1 MiB are client errors with a precise message.
func Decode(r *http.Request, v any) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return fault.Invalidf("bad_json", "field %q must be %s", te.Field, te.Type.String())
		case errors.As(err, &se):
			return fault.Invalidf("bad_json", "the body is not valid JSON (at byte %d)", se.Offset)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return fault.Invalidf("bad_json", "%s; see docs/api.md for the fields", strings.TrimPrefix(err.Error(), "json: "))
		case strings.Contains(err.Error(), "illegal base64"):
			return fault.Invalidf("bad_base64", "a binary field is not standard base64: %v", err)
		}
		return fault.Invalidf("bad_json", "the body is not valid JSON: %v", err)
	}
	if dec.More() {
		return fault.Invalidf("bad_json", "trailing data after the JSON object")
	}
	return nil
}

func readBody(r *http.Request) ([]byte, error) {
	body, err := httputil.ReadBody(r)
	if err != nil {
		return nil, fault.Invalidf("bad_body", "the request body is larger than 1 MiB or could not be read")
	}
	return body, nil
}

// WriteJSON writes v with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	httputil.EncodeJSON(w, v)
}

// StatusOf maps an error kind to an HTTP status.
func StatusOf(err error) int { return httputil.StatusOf(err) }

// WriteError writes err as {"error": {"code", "message"}}.
func WriteError(w http.ResponseWriter, err error) {
	httputil.SetRetryAfter(w.Header(), err)
	WriteJSON(w, StatusOf(err), map[string]any{"error": map[string]string{"code": fault.CodeOf(err), "message": err.Error()}})
}

func (h *Handler) enroll(r *http.Request, c kms.Caller) (any, error) {
	if err := h.svc.CheckEnrollment(r.Context(), httputil.BearerToken(r)); err != nil {
		return nil, err
	}
	appID, apiKey, err := h.svc.Enroll(r.Context(), c)
	return map[string]string{"appid": appID, "apikey": apiKey}, err
}

type createKeyRequest struct {
	KeySpec         string   `json:"keyspec"`
	KeyUsage        string   `json:"keyusage"`
	Name            string   `json:"name"`
	ReleasePolicies []string `json:"release_policies"`
	Decrypters      []string `json:"decrypters"`
}

func (h *Handler) createKey(r *http.Request, c kms.Caller) (any, error) {
	var req createKeyRequest
	if err := Decode(r, &req); err != nil {
		return nil, err
	}
	if req.KeySpec == "" {
		req.KeySpec = "EH_AES_GCM_256"
	}
	return h.svc.CreateKey(r.Context(), c, kms.CreateKeyRequest{Spec: req.KeySpec, Usage: req.KeyUsage, Name: req.Name,
		ReleasePolicies: req.ReleasePolicies, Decrypters: req.Decrypters})
}

func (h *Handler) listKeys(r *http.Request, c kms.Caller) (any, error) {
	keys, err := h.svc.ListKeys(r.Context(), c)
	return map[string]any{"keys": keys}, err
}

func (h *Handler) describeKey(r *http.Request, c kms.Caller) (any, error) {
	return h.svc.DescribeKey(r.Context(), c, r.PathValue("id"))
}

func (h *Handler) rotateKey(r *http.Request, c kms.Caller) (any, error) {
	return h.svc.RotateKey(r.Context(), c, r.PathValue("id"))
}

func (h *Handler) setEnabled(enabled bool) handlerFunc {
	return func(r *http.Request, c kms.Caller) (any, error) {
		if err := h.svc.SetKeyEnabled(r.Context(), c, r.PathValue("id"), enabled); err != nil {
			return nil, err
		}
		return h.svc.DescribeKey(r.Context(), c, r.PathValue("id"))
	}
}

func (h *Handler) scheduleDeletion(r *http.Request, c kms.Caller) (any, error) {
	var req struct {
		Days int `json:"days"`
	}
	if err := Decode(r, &req); err != nil {
		return nil, err
	}
	if req.Days < 0 {
		return nil, fault.Invalidf("invalid_window", "days must be positive")
	}
	if _, err := h.svc.ScheduleDeletion(r.Context(), c, r.PathValue("id"), time.Duration(req.Days)*24*time.Hour); err != nil {
		return nil, err
	}
	return h.svc.DescribeKey(r.Context(), c, r.PathValue("id"))
}

func (h *Handler) cancelDeletion(r *http.Request, c kms.Caller) (any, error) {
	if err := h.svc.CancelDeletion(r.Context(), c, r.PathValue("id")); err != nil {
		return nil, err
	}
	return h.svc.DescribeKey(r.Context(), c, r.PathValue("id"))
}

type cryptRequest struct {
	Plaintext  []byte `json:"plaintext"`
	Ciphertext []byte `json:"ciphertext"`
	AAD        []byte `json:"aad"`
}

func (h *Handler) encrypt(r *http.Request, c kms.Caller) (any, error) {
	var req cryptRequest
	if err := Decode(r, &req); err != nil {
		return nil, err
	}
	ct, err := h.svc.Encrypt(r.Context(), c, r.PathValue("id"), req.Plaintext, req.AAD)
	return map[string][]byte{"ciphertext": ct}, err
}

func (h *Handler) decrypt(r *http.Request, c kms.Caller) (any, error) {
	var req cryptRequest
	if err := Decode(r, &req); err != nil {
		return nil, err
	}
	if len(req.Ciphertext) == 0 {
		return nil, fault.Invalidf("missing_ciphertext", "ciphertext (base64) is required")
	}
	pt, err := h.svc.Decrypt(r.Context(), c, r.PathValue("id"), req.Ciphertext, req.AAD)
	return map[string][]byte{"plaintext": pt}, err
}

func (h *Handler) dataKey(r *http.Request, c kms.Caller) (any, error) {
	var req struct {
		Length           int    `json:"length"`
		AAD              []byte `json:"aad"`
		IncludePlaintext bool   `json:"include_plaintext"`
	}
	if err := Decode(r, &req); err != nil {
		return nil, err
	}
	if req.Length == 0 {
		req.Length = 32
	}
	pt, ct, err := h.svc.GenerateDataKey(r.Context(), c, r.PathValue("id"), req.Length, req.AAD, req.IncludePlaintext)
	out := map[string]any{"ciphertext": ct}
	if req.IncludePlaintext {
		out["plaintext"] = pt
	}
	return out, err
}

func (h *Handler) release(r *http.Request, c kms.Caller) (any, error) {
	var req struct {
		Token       string `json:"token"`
		Attestation *struct {
			Quote      []byte `json:"quote"`
			Nonce      []byte `json:"nonce"`
			PolicyID   string `json:"policy_id"`
			IssueToken bool   `json:"issue_token"`
		} `json:"attestation"`
		Ciphertext  []byte `json:"ciphertext"`
		AAD         []byte `json:"aad"`
		RuntimeData []byte `json:"runtime_data"`
	}
	if err := Decode(r, &req); err != nil {
		return nil, err
	}
	if len(req.Ciphertext) == 0 {
		return nil, fault.Invalidf("missing_ciphertext", "ciphertext (the wrapped data key, base64) is required")
	}
	proof := kms.ReleaseProof{Token: req.Token, Remote: r.RemoteAddr}
	if a := req.Attestation; a != nil {
		if len(a.Quote) == 0 || len(a.Nonce) == 0 {
			return nil, fault.Invalidf("incomplete_attestation", "attestation needs quote (base64 DCAP quote) and nonce (from GET /v1/attestation/nonce)")
		}
		proof.Quote, proof.Nonce, proof.PolicyID, proof.IssueToken = a.Quote, a.Nonce, a.PolicyID, a.IssueToken
	}
	sealed, grant, err := h.svc.Release(r.Context(), c, r.PathValue("id"), req.Ciphertext, req.AAD, proof, req.RuntimeData)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"sealed": sealed}
	if grant.Claims != nil {
		out["claims"] = grant.Claims
	}
	if grant.Token != "" {
		out["token"] = grant.Token
	}
	return out, nil
}

func (h *Handler) status(r *http.Request, c kms.Caller) (any, error) {
	kr := h.root
	return map[string]any{"sealed": kr.Sealed(), "initialized": kr.Initialized(), "root_key_provider": kr.Mode(), "open_enrollment": h.svc.OpenEnrollment(), "term": kr.Term()}, nil
}

// Share is a root key share on the wire.
type Share struct {
	Index   int    `json:"index"`
	Content []byte `json:"content"`
}

func wireShares(shares []shamir.Share) []Share {
	out := make([]Share, len(shares))
	for i, s := range shares {
		out[i] = Share{Index: int(s.X), Content: s.Y}
	}
	return out
}

func (h *Handler) initRoot(r *http.Request, c kms.Caller) (any, error) {
	shares, err := h.svc.InitRootKey(r.Context(), c)
	if err != nil {
		return nil, err
	}
	return map[string]any{"shares": wireShares(shares), "threshold": 3}, nil
}

func (h *Handler) rotateRoot(r *http.Request, c kms.Caller) (any, error) {
	term, err := h.svc.RotateRootKey(r.Context(), c)
	return map[string]any{"term": term}, err
}

func (h *Handler) prepareRekey(r *http.Request, c kms.Caller) (any, error) {
	id, shares, err := h.svc.PrepareRekey(r.Context(), c)
	if err != nil {
		return nil, err
	}
	return map[string]any{"rekey_id": id, "shares": wireShares(shares), "threshold": 3}, nil
}

func (h *Handler) commitRekey(r *http.Request, c kms.Caller) (any, error) {
	var req struct {
		ID string `json:"rekey_id"`
	}
	if err := Decode(r, &req); err != nil {
		return nil, err
	}
	if req.ID == "" {
		return nil, fault.Errorf(fault.Invalid, "missing_rekey_id", "rekey_id (from POST /v1/operator/rekey) is required")
	}
	err := h.svc.CommitRekey(r.Context(), c, req.ID)
	return map[string]any{"committed": err == nil}, err
}

func (h *Handler) startRewrap(r *http.Request, c kms.Caller) (any, error) {
	return h.svc.StartRewrap(c)
}

func (h *Handler) rewrapStatus(r *http.Request, c kms.Caller) (any, error) {
	return h.svc.Rewrap(), nil
}

func (h *Handler) unseal(r *http.Request, c kms.Caller) (any, error) {
	var s Share
	if err := Decode(r, &s); err != nil {
		return nil, err
	}
	held, unsealed, err := h.svc.SubmitShare(r.Context(), c, s.Index, s.Content)
	return map[string]any{"held": held, "sealed": !unsealed}, err
}

// openAPIRoute serves docs/openapi.yaml as JSON (no authentication: it
// describes the API, it holds nothing secret).
func (h *Handler) openAPIRoute() {
	const pattern = "GET /v1/openapi.json"
	h.routes = append(h.routes, pattern)
	b, err := docs.OpenAPIJSON()
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err != nil { // the embedded file is checked by the tests; never at run time
			WriteError(w, fmt.Errorf("openapi.yaml: %w", err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
}
