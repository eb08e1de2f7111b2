package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ppml-project/ppml/wire/token"
)

// Attestation is a client of the native attestation API (/v1/attestation).
type Attestation struct{ n *Native }

// NewAttestation returns an attestation client.
func NewAttestation(cfg Config) (*Attestation, error) {
	n, err := NewNative(cfg)
	if err != nil {
		return nil, err
	}
	return &Attestation{n: n}, nil
}

// Nonce is a single-use challenge, valid for 5 minutes.
type Nonce struct {
	Nonce     []byte    `json:"nonce"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Nonce asks for a nonce. Put SHA-256(nonce || runtime_data) in the first
// 32 bytes of the quote's report data.
func (a *Attestation) Nonce(ctx context.Context) (Nonce, error) {
	var out Nonce
	err := a.n.Do(ctx, http.MethodGet, "/v1/attestation/nonce", nil, &out, "app")
	return out, err
}

// VerifyRequest is what Verify sends.
type VerifyRequest struct {
	Quote       []byte `json:"quote"`
	Nonce       []byte `json:"nonce"`
	RuntimeData []byte `json:"runtime_data,omitempty"`
	PolicyID    string `json:"policy_id,omitempty"`
}

// VerifyResponse is an accepted attestation.
type VerifyResponse struct {
	Token  string       `json:"token"`
	Claims token.Claims `json:"claims"`
}

// Verify sends a quote; a refusal is an *APIError whose Code names the
// failed check and whose Message gives every reason.
func (a *Attestation) Verify(ctx context.Context, req VerifyRequest) (VerifyResponse, error) {
	var out VerifyResponse
	err := a.n.Do(ctx, http.MethodPost, "/v1/attestation/verify", req, &out, "app")
	return out, err
}

// JWKS fetches the token verification keys.
func (a *Attestation) JWKS(ctx context.Context) (jose.JSONWebKeySet, error) {
	var out jose.JSONWebKeySet
	err := a.n.Do(ctx, http.MethodGet, "/v1/attestation/jwks", nil, &out, "")
	return out, err
}

// VerifyToken fetches the JWKS and checks tok at now with leeway.
func (a *Attestation) VerifyToken(ctx context.Context, tok string, now time.Time, leeway time.Duration) (*token.Claims, error) {
	set, err := a.JWKS(ctx)
	if err != nil {
		return nil, err
	}
	return token.VerifyJWKS(tok, set, now, leeway)
}

// Policy is a stored attestation policy.
type Policy struct {
	ID        string          `json:"policy_id"`
	Origin    string          `json:"origin"`
	CreatedAt time.Time       `json:"created_at"`
	Policy    json.RawMessage `json:"policy"`
}

// CreatePolicy stores a policy (quote/policy JSON) and returns it with its id.
func (a *Attestation) CreatePolicy(ctx context.Context, doc json.RawMessage) (Policy, error) {
	var out Policy
	err := a.n.Do(ctx, http.MethodPost, "/v1/attestation/policies", doc, &out, "app")
	return out, err
}

// GetPolicy returns one of the app's policies.
func (a *Attestation) GetPolicy(ctx context.Context, id string) (Policy, error) {
	var out Policy
	err := a.n.Do(ctx, http.MethodGet, "/v1/attestation/policies/"+url.PathEscape(id), nil, &out, "app")
	return out, err
}
