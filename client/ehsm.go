package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/ppml-project/ppml/wire/ehsmsig"
)

// EHSM is a client of the eHSM protocol, signing requests as eHSM defines.
// It never sends empty values, 0 or false (they would be dropped from the
// server's canonical string), and it adds a unique nonce to every request so
// that several requests in one millisecond are not taken for replays.
type EHSM struct {
	cfg   Config
	mu    sync.Mutex
	count uint64
	seed  string
}

// NewEHSM returns an eHSM client.
func NewEHSM(cfg Config) (*EHSM, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("no KMS URL: pass --kms https://host:port or set PPML_KMS")
	}
	if _, err := cfg.httpClient(); err != nil {
		return nil, err
	}
	return &EHSM{cfg: cfg, seed: strconv.FormatInt(time.Now().UnixNano(), 36)}, nil
}

func (e *EHSM) nonce() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.count++
	return e.seed + "-" + strconv.FormatUint(e.count, 36)
}

// Call runs action with payload and returns the result object.
func (e *EHSM) Call(ctx context.Context, action string, payload map[string]any) (map[string]any, error) {
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	nonce := e.nonce()
	clean := map[string]any{}
	for k, v := range payload {
		switch x := v.(type) {
		case string:
			if x == "" {
				continue
			}
		case int:
			if x == 0 {
				continue
			}
		case bool:
			if !x {
				continue
			}
		}
		clean[k] = v
	}
	// Sign over the values exactly as the server will decode them.
	raw, err := json.Marshal(clean)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var decoded map[string]any
	if err := dec.Decode(&decoded); err != nil {
		return nil, err
	}
	sign := ehsmsig.Sign([]byte(e.cfg.APIKey), ehsmsig.Canonical(ehsmsig.Envelope(e.cfg.AppID, nonce, ts, decoded)))
	// The payload goes as the bytes signed over (the same bytes a second
	// Marshal of clean would give), not encoded twice.
	body, _ := json.Marshal(map[string]any{"appid": e.cfg.AppID, "nonce": nonce, "timestamp": ts, "payload": json.RawMessage(raw), "sign": sign})
	return e.do(ctx, http.MethodPost, action, body)
}

func (e *EHSM) do(ctx context.Context, method, action string, body []byte) (map[string]any, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.cfg.base()+"/ehsm?Action="+action, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if e.cfg.AdminToken != "" && body == nil {
		req.Header.Set("Authorization", "Bearer "+e.cfg.AdminToken)
	}
	resp, err := e.cfg.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("contacting the KMS at %s: %w", e.cfg.URL, err)
	}
	defer resp.Body.Close()
	var out struct {
		Code    int            `json:"code"`
		Message string         `json:"message"`
		Result  map[string]any `json:"result"`
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("the KMS answered HTTP %d with a body that is not the eHSM envelope", resp.StatusCode)
	}
	if out.Code != 200 {
		return nil, &APIError{Status: out.Code, Message: out.Message}
	}
	return out.Result, nil
}

// Enroll calls GET ?Action=Enroll (with the admin token, if configured).
func (e *EHSM) Enroll(ctx context.Context) (appID, apiKey string, err error) {
	res, err := e.do(ctx, http.MethodGet, "Enroll", nil)
	if err != nil {
		return "", "", err
	}
	appID, _ = res["appid"].(string)
	apiKey, _ = res["apikey"].(string)
	return appID, apiKey, nil
}

// CreateKey creates a key and returns its id.
func (e *EHSM) CreateKey(ctx context.Context, spec string) (string, error) {
	res, err := e.Call(ctx, "CreateKey", map[string]any{"keyspec": spec, "origin": "EH_INTERNAL_KEY"})
	if err != nil {
		return "", err
	}
	id, _ := res["keyid"].(string)
	return id, nil
}

// GenerateDataKeyWithoutPlaintext returns the base64 ciphertext of a new data key.
func (e *EHSM) GenerateDataKeyWithoutPlaintext(ctx context.Context, keyID string, keylen int, aadB64 string) (string, error) {
	res, err := e.Call(ctx, "GenerateDataKeyWithoutPlaintext", map[string]any{"keyid": keyID, "keylen": keylen, "aad": aadB64})
	if err != nil {
		return "", err
	}
	ct, _ := res["ciphertext"].(string)
	return ct, nil
}

// Decrypt returns the base64 plaintext of a ciphertext.
func (e *EHSM) Decrypt(ctx context.Context, keyID, ctB64, aadB64 string) (string, error) {
	res, err := e.Call(ctx, "Decrypt", map[string]any{"keyid": keyID, "ciphertext": ctB64, "aad": aadB64})
	if err != nil {
		return "", err
	}
	pt, _ := res["plaintext"].(string)
	return pt, nil
}
