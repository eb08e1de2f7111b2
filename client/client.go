// Package client is the Go client of ppml's KMS: the eHSM protocol (what
// BigDL's EHSMKeyManagementService speaks) and the native /v1 API. TLS is
// always verified: the system roots, SSL_CERT_FILE, or a CA file.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ppml-project/ppml/internal/tlsutil"
	"github.com/ppml-project/ppml/wire/keyinfo"
	"github.com/ppml-project/ppml/wire/token"
)

// Config locates and authenticates to a KMS.
type Config struct {
	URL    string // https://host:port
	AppID  string
	APIKey string
	CAFile string // extra trusted CA (PEM), e.g. the server's self-signed certificate
	// AdminToken authenticates operator calls (enrollment, unseal).
	AdminToken string
	HTTP       *http.Client // optional; built from CAFile when nil
}

// HTTPClient returns a keep-alive client that verifies the server.
func HTTPClient(caFile string, maxConns int) (*http.Client, error) {
	tlsCfg, err := tlsutil.ClientConfig(caFile)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	if maxConns > 0 {
		tr.MaxIdleConnsPerHost = maxConns
		tr.MaxIdleConns = maxConns
	}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}, nil
}

func (c *Config) httpClient() (*http.Client, error) {
	if c.HTTP != nil {
		return c.HTTP, nil
	}
	h, err := HTTPClient(c.CAFile, 0)
	if err != nil {
		return nil, err
	}
	c.HTTP = h
	return h, nil
}

func (c *Config) base() string { return strings.TrimRight(c.URL, "/") }

// APIError is an error answered by the server.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%s (%s)", e.Message, e.Code)
	}
	return e.Message
}

// Native is a client of the /v1 API.
type Native struct{ cfg Config }

// NewNative returns a native API client.
func NewNative(cfg Config) (*Native, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("no KMS URL: pass --kms https://host:port or set PPML_KMS")
	}
	if _, err := cfg.httpClient(); err != nil {
		return nil, err
	}
	return &Native{cfg: cfg}, nil
}

// Do sends a JSON request to path and decodes the answer into out.
func (n *Native) Do(ctx context.Context, method, path string, in, out any, auth string) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, n.cfg.base()+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	switch auth {
	case "app":
		if n.cfg.AppID == "" || n.cfg.APIKey == "" {
			return fmt.Errorf("no app credentials: pass --app-id and --api-key-file (or PPML_APP_ID / PPML_API_KEY)")
		}
		req.SetBasicAuth(n.cfg.AppID, n.cfg.APIKey)
	case "admin":
		if n.cfg.AdminToken != "" {
			req.Header.Set("Authorization", "Bearer "+n.cfg.AdminToken)
		}
	}
	resp, err := n.cfg.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("contacting the KMS at %s: %w", n.cfg.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
			return &APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
		}
		return &APIError{Status: resp.StatusCode, Message: fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(data)))}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding the KMS answer: %w", err)
	}
	return nil
}

// Key is a key as the native API describes it.
type Key = keyinfo.Info

// Enroll creates an app (admin token needed unless the server has open enrollment).
func (n *Native) Enroll(ctx context.Context) (appID, apiKey string, err error) {
	var out struct{ AppID, APIKey string }
	var raw map[string]string
	err = n.Do(ctx, http.MethodPost, "/v1/apps", nil, &raw, "admin")
	out.AppID, out.APIKey = raw["appid"], raw["apikey"]
	return out.AppID, out.APIKey, err
}

// KeyOptions describes a new key.
type KeyOptions struct {
	Spec            string   `json:"keyspec,omitempty"` // default EH_AES_GCM_256
	Usage           string   `json:"keyusage,omitempty"`
	Name            string   `json:"name,omitempty"`
	ReleasePolicies []string `json:"release_policies,omitempty"` // attestation policies the key is bound to
	Decrypters      []string `json:"decrypters,omitempty"`       // apps that may decrypt a bound key without attestation
}

// CreateKey creates a key.
func (n *Native) CreateKey(ctx context.Context, o KeyOptions) (Key, error) {
	var k Key
	err := n.Do(ctx, http.MethodPost, "/v1/keys", o, &k, "app")
	return k, err
}

// Release asks for the plaintext of a data key ciphertext made under a
// policy-bound key. token comes from the attestation service; runtimeData is
// the X25519 public key the attested quote committed to. The answer is
// HPKE-sealed to that key (open it with release.Open of wire/release).
func (n *Native) Release(ctx context.Context, keyID string, ciphertext, aad []byte, token string, runtimeData []byte) ([]byte, error) {
	var out struct{ Sealed []byte }
	err := n.Do(ctx, http.MethodPost, "/v1/keys/"+keyID+"/release",
		map[string]any{"token": token, "ciphertext": ciphertext, "aad": aad, "runtime_data": runtimeData}, &out, "app")
	return out.Sealed, err
}

// ReleaseEvidence is the attestation a ReleaseAttested request carries in
// place of a token: a quote whose report data starts with
// SHA-256(nonce || runtime_data), and that nonce.
type ReleaseEvidence struct {
	Quote      []byte `json:"quote"`
	Nonce      []byte `json:"nonce"`
	PolicyID   string `json:"policy_id,omitempty"` // "" = the key's one release policy
	IssueToken bool   `json:"issue_token,omitempty"`
}

// ReleaseAttestedResponse is the answer of ReleaseAttested.
type ReleaseAttestedResponse struct {
	Sealed []byte       `json:"sealed"`
	Claims token.Claims `json:"claims"`
	Token  string       `json:"token"` // when IssueToken was set
}

// ReleaseAttested is Release with the attestation in the same request: the
// server verifies the quote, spends the nonce and evaluates the policy as
// POST /v1/attestation/verify does, then releases (one round trip and no
// token, unless IssueToken asks for one for later releases).
func (n *Native) ReleaseAttested(ctx context.Context, keyID string, ciphertext, aad []byte, ev ReleaseEvidence, runtimeData []byte) (ReleaseAttestedResponse, error) {
	var out ReleaseAttestedResponse
	err := n.Do(ctx, http.MethodPost, "/v1/keys/"+keyID+"/release",
		map[string]any{"attestation": ev, "ciphertext": ciphertext, "aad": aad, "runtime_data": runtimeData}, &out, "app")
	return out, err
}

// ListKeys lists the app's keys.
func (n *Native) ListKeys(ctx context.Context) ([]Key, error) {
	var out struct{ Keys []Key }
	err := n.Do(ctx, http.MethodGet, "/v1/keys", nil, &out, "app")
	return out.Keys, err
}

// KeyAction posts to /v1/keys/{id}/{action} (rotate, enable, disable,
// schedule-deletion, cancel-deletion) and returns the key afterwards.
func (n *Native) KeyAction(ctx context.Context, id, action string, body any) (Key, error) {
	var k Key
	err := n.Do(ctx, http.MethodPost, "/v1/keys/"+id+"/"+action, body, &k, "app")
	return k, err
}

// GenerateDataKey returns a new data key's ciphertext (and plaintext if asked).
func (n *Native) GenerateDataKey(ctx context.Context, keyID string, length int, aad []byte, withPlaintext bool) (pt, ct []byte, err error) {
	var out struct{ Plaintext, Ciphertext []byte }
	err = n.Do(ctx, http.MethodPost, "/v1/keys/"+keyID+"/datakey", map[string]any{"length": length, "aad": aad, "include_plaintext": withPlaintext}, &out, "app")
	return out.Plaintext, out.Ciphertext, err
}

// Decrypt decrypts a ciphertext made under keyID.
func (n *Native) Decrypt(ctx context.Context, keyID string, ct, aad []byte) ([]byte, error) {
	var out struct{ Plaintext []byte }
	err := n.Do(ctx, http.MethodPost, "/v1/keys/"+keyID+"/decrypt", map[string]any{"ciphertext": ct, "aad": aad}, &out, "app")
	return out.Plaintext, err
}

// Encrypt encrypts up to 6 KiB under keyID.
func (n *Native) Encrypt(ctx context.Context, keyID string, pt, aad []byte) ([]byte, error) {
	var out struct{ Ciphertext []byte }
	err := n.Do(ctx, http.MethodPost, "/v1/keys/"+keyID+"/encrypt", map[string]any{"plaintext": pt, "aad": aad}, &out, "app")
	return out.Ciphertext, err
}

// Share is one root key share.
type Share struct {
	Index   int    `json:"index"`
	Content []byte `json:"content"`
}

// InitRootKey creates the root key of a Shamir-sealed KMS and returns its shares.
func (n *Native) InitRootKey(ctx context.Context) ([]Share, error) {
	var out struct{ Shares []Share }
	err := n.Do(ctx, http.MethodPost, "/v1/operator/init", nil, &out, "admin")
	return out.Shares, err
}

// Unseal submits one share; it reports how many are held and whether the KMS is still sealed.
func (n *Native) Unseal(ctx context.Context, s Share) (held int, sealed bool, err error) {
	var out struct {
		Held   int  `json:"held"`
		Sealed bool `json:"sealed"`
	}
	err = n.Do(ctx, http.MethodPost, "/v1/operator/unseal", s, &out, "admin")
	return out.Held, out.Sealed, err
}

// Status reports the seal state.
func (n *Native) Status(ctx context.Context) (map[string]any, error) {
	var out map[string]any
	err := n.Do(ctx, http.MethodGet, "/v1/operator/status", nil, &out, "")
	return out, err
}

// RotateRootKey starts a new root key term (the shares stay the same) and returns it.
func (n *Native) RotateRootKey(ctx context.Context) (int, error) {
	var out struct{ Term int }
	err := n.Do(ctx, http.MethodPost, "/v1/operator/rotate", nil, &out, "admin")
	return out.Term, err
}

// PrepareRekey asks for new unseal shares. They replace the old ones only
// after CommitRekey(id), which the caller sends once they are stored.
func (n *Native) PrepareRekey(ctx context.Context) (id string, shares []Share, err error) {
	var out struct {
		ID     string `json:"rekey_id"`
		Shares []Share
	}
	err = n.Do(ctx, http.MethodPost, "/v1/operator/rekey", nil, &out, "admin")
	return out.ID, out.Shares, err
}

// CommitRekey makes the prepared shares the only valid ones (safe to retry).
func (n *Native) CommitRekey(ctx context.Context, id string) error {
	return n.Do(ctx, http.MethodPost, "/v1/operator/rekey/commit", map[string]string{"rekey_id": id}, nil, "admin")
}

// RewrapStatus is the progress of a replica's root key re-wrap job.
type RewrapStatus struct {
	Term      int    `json:"term"`
	Scanned   int    `json:"scanned"`
	Rewrapped int    `json:"rewrapped"`
	Done      bool   `json:"done"`
	Running   bool   `json:"running"`
	Error     string `json:"error"`
}

// StartRewrap starts (or joins) the re-wrap job of the replica.
func (n *Native) StartRewrap(ctx context.Context) (RewrapStatus, error) {
	var out RewrapStatus
	err := n.Do(ctx, http.MethodPost, "/v1/operator/rewrap", nil, &out, "admin")
	return out, err
}

// Rewrap reports the re-wrap job of the replica.
func (n *Native) Rewrap(ctx context.Context) (RewrapStatus, error) {
	var out RewrapStatus
	err := n.Do(ctx, http.MethodGet, "/v1/operator/rewrap", nil, &out, "admin")
	return out, err
}
