// Package token is the signed result of a successful attestation: a JWT
// (JWS compact, ES256, "kid" = RFC 7638 thumbprint of the signing key) whose
// claims say what was attested. The Attestation Service issues tokens with a
// Signer; relying parties check them in process (Signer.Verify) or remotely
// against the service's JWKS (VerifyJWKS). The package depends on go-jose
// only, so clients can import it.
package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ppml-project/ppml/wire/measurement"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// MaxTTL is the longest validity of a token (exp - iat).
const MaxTTL = 5 * time.Minute

// Algorithm is the only accepted signature algorithm.
const Algorithm = jose.ES256

// Measurements are the attested values of the quote (wire/measurement).
type Measurements = measurement.Measurements

// Claims are the claims of an attestation token.
type Claims struct {
	Issuer string `json:"iss"`
	// Subject is the app id, as AppID.
	Subject string `json:"sub"`
	// ID (jti) is unique per token, for replay bookkeeping by relying parties.
	ID        string `json:"jti"`
	IssuedAt  int64  `json:"iat"` // Unix seconds
	ExpiresAt int64  `json:"exp"` // Unix seconds, at most MaxTTL after iat

	TEE          string       `json:"tee"` // "sgx" or "tdx"
	Measurements Measurements `json:"measurements"`
	Debug        bool         `json:"debug"`
	TCBStatus    string       `json:"tcb_status"`
	AdvisoryIDs  []string     `json:"advisory_ids"`
	FMSPC        string       `json:"fmspc,omitempty"`
	AppID        string       `json:"app_id"`
	// PolicyID is the stored policy the quote was accepted under; empty
	// means the server's default policy.
	PolicyID string `json:"policy_id,omitempty"`
	// RuntimeDataSHA256 is hex SHA-256 of the runtime data the caller bound
	// into the quote (report_data[0:32] = SHA-256(nonce || runtime_data)).
	RuntimeDataSHA256 string `json:"runtime_data_sha256"`
	// Simulated is true when the quote chained to the simulation root (ppml
	// serve --allow-simulation): never trust such a token in production.
	Simulated bool `json:"simulated"`
}

// Issued returns iat as a time.
func (c *Claims) Issued() time.Time { return time.Unix(c.IssuedAt, 0).UTC() }

// Expires returns exp as a time.
func (c *Claims) Expires() time.Time { return time.Unix(c.ExpiresAt, 0).UTC() }

// Signer signs and verifies tokens with one ES256 key.
type Signer struct {
	key    *ecdsa.PrivateKey
	kid    string
	signer jose.Signer
	jwks   jose.JSONWebKeySet
}

// Thumbprint returns the RFC 7638 SHA-256 thumbprint (base64url) of a public key.
func Thumbprint(pub *ecdsa.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// NewSigner returns a Signer for a P-256 key.
func NewSigner(key *ecdsa.PrivateKey) (*Signer, error) {
	if key == nil || key.Curve != elliptic.P256() {
		return nil, errors.New("token: the signing key must be ECDSA P-256 (ES256)")
	}
	kid, err := Thumbprint(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: Algorithm, Key: jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: string(Algorithm)}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	pub := jose.JSONWebKey{Key: &key.PublicKey, KeyID: kid, Algorithm: string(Algorithm), Use: "sig"}
	return &Signer{key: key, kid: kid, signer: sig, jwks: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}}, nil
}

// KeyID returns the kid of the signing key.
func (s *Signer) KeyID() string { return s.kid }

// JWKS returns the public key set.
func (s *Signer) JWKS() jose.JSONWebKeySet { return s.jwks }

// Sign serialises claims as a compact JWS.
func (s *Signer) Sign(c *Claims) (string, error) {
	if c.ExpiresAt-c.IssuedAt > int64(MaxTTL/time.Second) || c.ExpiresAt <= c.IssuedAt {
		return "", fmt.Errorf("token: exp must be after iat and at most %s later", MaxTTL)
	}
	return jwt.Signed(s.signer).Claims(c).Serialize()
}

// Verify checks a token signed by this Signer at time now (no leeway).
func (s *Signer) Verify(tok string, now time.Time) (*Claims, error) {
	return VerifyJWKS(tok, s.jwks, now, 0)
}

// ParseJWKS decodes a JWKS document.
func ParseJWKS(data []byte) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return set, fmt.Errorf("token: JWKS: %w", err)
	}
	return set, nil
}

// Error is a token verification failure.
type Error struct{ Msg string }

func (e *Error) Error() string { return "attestation token refused: " + e.Msg }

func refuse(format string, a ...any) error { return &Error{Msg: fmt.Sprintf(format, a...)} }

// VerifyJWKS checks a token against a key set (as served at
// /v1/attestation/jwks): ES256 only, the kid must name a key of the set,
// the signature must verify, iat <= now+leeway, now < exp+leeway, and exp
// at most MaxTTL after iat.
func VerifyJWKS(tok string, set jose.JSONWebKeySet, now time.Time, leeway time.Duration) (*Claims, error) {
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{Algorithm})
	if err != nil {
		return nil, refuse("not an ES256 JWT: %v", err)
	}
	if len(parsed.Headers) != 1 {
		return nil, refuse("want exactly one signature")
	}
	kid := parsed.Headers[0].KeyID
	if kid == "" {
		return nil, refuse("no kid in the header")
	}
	keys := set.Key(kid)
	if len(keys) == 0 {
		return nil, refuse("kid %q is not in the key set (fetch the current JWKS)", kid)
	}
	pub, ok := keys[0].Key.(*ecdsa.PublicKey)
	if !ok {
		return nil, refuse("key %q is not an ECDSA public key", kid)
	}
	var c Claims
	if err := parsed.Claims(pub, &c); err != nil {
		return nil, refuse("bad signature: %v", err)
	}
	iat, exp := time.Unix(c.IssuedAt, 0), time.Unix(c.ExpiresAt, 0)
	switch {
	case c.IssuedAt == 0 || c.ExpiresAt == 0:
		return nil, refuse("iat and exp are required")
	case exp.Sub(iat) > MaxTTL || !exp.After(iat):
		return nil, refuse("exp must be after iat and at most %s later", MaxTTL)
	case iat.After(now.Add(leeway)):
		return nil, refuse("issued in the future (iat %s, now %s)", iat.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case !now.Before(exp.Add(leeway)):
		return nil, refuse("expired at %s", exp.UTC().Format(time.RFC3339))
	}
	return &c, nil
}
