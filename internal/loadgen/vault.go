package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// VaultTransit drives the reference peer of `ppml bench kms --vault`:
// HashiCorp Vault's (or OpenBao's) transit engine, with the operations that
// match the eHSM pair ppml is measured on: datakey/wrapped (a data key
// returned only wrapped, as GenerateDataKeyWithoutPlaintext) and decrypt.
type VaultTransit struct {
	URL   string // https://127.0.0.1:8200
	Token string // a token allowed to use transit (the dev root token)
	Key   string // transit key name
	HTTP  *http.Client
}

func (v *VaultTransit) call(ctx context.Context, method, path string, body any) (map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(v.URL, "/")+"/v1/"+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Vault-Token", v.Token)
	resp, err := v.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("vault %s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	var out struct {
		Data map[string]any `json:"data"`
	}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			return nil, fmt.Errorf("vault %s: answer is not JSON: %w", path, err)
		}
	}
	return out.Data, nil
}

// Setup mounts transit (unless mounted) and creates an aes256-gcm96 key.
func (v *VaultTransit) Setup(ctx context.Context) error {
	if _, err := v.call(ctx, http.MethodPost, "sys/mounts/transit", map[string]any{"type": "transit"}); err != nil &&
		!strings.Contains(err.Error(), "existing mount") {
		return err
	}
	_, err := v.call(ctx, http.MethodPost, "transit/keys/"+v.Key, map[string]any{"type": "aes256-gcm96"})
	return err
}

// DataKeyWrapped asks for a 256-bit data key returned only wrapped.
func (v *VaultTransit) DataKeyWrapped(ctx context.Context) (string, error) {
	d, err := v.call(ctx, http.MethodPost, "transit/datakey/wrapped/"+v.Key, map[string]any{"bits": 256})
	if err != nil {
		return "", err
	}
	ct, _ := d["ciphertext"].(string)
	if ct == "" {
		return "", fmt.Errorf("vault datakey: no ciphertext in the answer")
	}
	return ct, nil
}

// Decrypt decrypts a ciphertext of this key.
func (v *VaultTransit) Decrypt(ctx context.Context, ciphertext string) error {
	d, err := v.call(ctx, http.MethodPost, "transit/decrypt/"+v.Key, map[string]any{"ciphertext": ciphertext})
	if err != nil {
		return err
	}
	if _, ok := d["plaintext"].(string); !ok {
		return fmt.Errorf("vault decrypt: no plaintext in the answer")
	}
	return nil
}
