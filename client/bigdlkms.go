package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// BigDLKMS is a client of the BigDL KMS protocol (ours or upstream's). Unlike
// BigDL's Scala client it verifies TLS and checks every status, so an error
// text is never taken for a key.
type BigDLKMS struct {
	URL   string
	User  string
	Token string
	HTTP  *http.Client
}

// NewBigDLKMS returns a client; caFile adds a trusted CA.
func NewBigDLKMS(u, user, token, caFile string) (*BigDLKMS, error) {
	if u == "" || user == "" || token == "" {
		return nil, fmt.Errorf("the BigDL KMS needs --bigdl-kms URL, --bigdl-user and --bigdl-token-file")
	}
	h, err := HTTPClient(caFile, 0)
	if err != nil {
		return nil, err
	}
	return &BigDLKMS{URL: strings.TrimRight(u, "/"), User: user, Token: token, HTTP: h}, nil
}

func (b *BigDLKMS) do(ctx context.Context, method, route, name string, extra url.Values) (string, error) {
	q := url.Values{"user": {b.User}, "token": {b.Token}}
	for k, v := range extra {
		q[k] = v
	}
	return b.send(ctx, method, route, name, q, "")
}

func (b *BigDLKMS) send(ctx context.Context, method, route, name string, q url.Values, adminToken string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, b.URL+"/"+route+"/"+url.PathEscape(name)+"?"+q.Encode(), nil)
	if err != nil {
		return "", err
	}
	if adminToken != "" {
		req.Header.Set("Authorization", "Bearer "+adminToken)
	}
	// ppml answers JSON with statuses on request (and resets a failing
	// GET /dataKey otherwise, so that BigDL's client never takes an error
	// text for a key); upstream's KMS ignores the header and answers text.
	req.Header.Set("Accept", "application/json, text/plain")
	resp, err := b.HTTP.Do(req)
	if err != nil {
		return "", fmt.Errorf("contacting the BigDL KMS at %s: %w", b.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	text := string(body)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		var answer struct {
			Result string `json:"result"`
			Error  struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(body, &answer); err != nil {
			return "", fmt.Errorf("BigDL KMS %s /%s/%s: unreadable JSON answer: %w", method, route, name, err)
		}
		text = answer.Result
		if resp.StatusCode != http.StatusOK {
			text = answer.Error.Message
		}
	}
	if resp.StatusCode != http.StatusOK {
		return "", &APIError{Status: resp.StatusCode, Message: fmt.Sprintf("BigDL KMS %s /%s/%s: HTTP %d: %s", method, route, name, resp.StatusCode, strings.TrimSpace(text))}
	}
	return text, nil
}

// CreateUser creates the BigDL KMS user b.User with token b.Token
// (POST /user/{name}?token=), as the operator: ppml needs the admin
// credential for it (or a server with --open-enrollment, then adminToken
// may be empty).
func (b *BigDLKMS) CreateUser(ctx context.Context, adminToken string) error {
	_, err := b.send(ctx, http.MethodPost, "user", b.User, url.Values{"token": {b.Token}}, adminToken)
	return err
}

// CreatePrimaryKey creates a primary key called name.
func (b *BigDLKMS) CreatePrimaryKey(ctx context.Context, name string) error {
	_, err := b.do(ctx, http.MethodPost, "primaryKey", name, nil)
	return err
}

// CreateDataKey creates data key dk under primary key pk.
func (b *BigDLKMS) CreateDataKey(ctx context.Context, pk, dk string) error {
	_, err := b.do(ctx, http.MethodPost, "dataKey", dk, url.Values{"primaryKeyName": {pk}})
	return err
}

// DataKey returns the base64 text of data key dk made under primary key pk.
func (b *BigDLKMS) DataKey(ctx context.Context, pk, dk string) (string, error) {
	return b.do(ctx, http.MethodGet, "dataKey", dk, url.Values{"primaryKeyName": {pk}})
}
