package server_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/ppml-project/ppml/api/native"
	"github.com/ppml-project/ppml/attestation"
	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/docs"
	"github.com/ppml-project/ppml/server/servertest"
)

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(docs.OpenAPIYAML)
	if err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("docs/openapi.yaml is not valid OpenAPI 3: %v", err)
	}
	return doc
}

// TestOpenAPI: docs/openapi.yaml is valid OpenAPI 3, describes exactly the
// routes api/native registers, is served at GET /v1/openapi.json, and the
// answers of a live server (successes and errors) match it.
func TestOpenAPI(t *testing.T) {
	doc := loadOpenAPI(t)
	var described []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			described = append(described, method+" "+path)
		}
	}
	registered := native.New(native.Config{Attestation: &attestation.Service{}}).Routes()
	slices.Sort(described)
	slices.Sort(registered)
	for _, r := range registered {
		if !slices.Contains(described, r) {
			t.Errorf("route %s is not in docs/openapi.yaml", r)
		}
	}
	for _, d := range described {
		if !slices.Contains(registered, d) {
			t.Errorf("docs/openapi.yaml describes %s, which api/native does not serve", d)
		}
	}

	inst := servertest.Start(t, servertest.Options{})
	doc.Servers = openapi3.Servers{{URL: inst.URL}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := client.HTTPClient(inst.CAFile, 0)
	_, cfg := inst.Enroll(t)
	checked := map[string]bool{}
	call := func(method, path, body string, auth func(*http.Request), wantStatus int) []byte {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, inst.URL+path, rd)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if auth != nil {
			auth(req)
		}
		resp, err := h.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, got, wantStatus)
		}
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatalf("%s %s: not in the description: %v", method, path, err)
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
			Body: io.NopCloser(bytes.NewReader(got))}
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			t.Errorf("%s %s %d does not match docs/openapi.yaml: %v\n%s", method, path, resp.StatusCode, err, got)
		}
		checked[route.Method+" "+route.Path] = true
		return got
	}
	app := func(r *http.Request) { r.SetBasicAuth(cfg.AppID, cfg.APIKey) }
	admin := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+inst.AdminToken) }
	wrong := func(r *http.Request) { r.SetBasicAuth(cfg.AppID, "wrong-key") }

	if b := call("GET", "/v1/openapi.json", "", nil, 200); !bytes.Contains(b, []byte(`"openapi":"3.0.3"`)) {
		t.Fatalf("/v1/openapi.json: %.200s", b)
	}
	call("POST", "/v1/apps", "", admin, 200)
	call("POST", "/v1/apps", "", nil, 401)
	key := call("POST", "/v1/keys", `{"keyspec":"EH_AES_GCM_256","name":"openapi"}`, app, 200)
	id := string(key[bytes.Index(key, []byte(`"keyid":"`))+9:])
	id = id[:strings.IndexByte(id, '"')]
	call("POST", "/v1/keys", `{"keyspec":"NOPE"}`, app, 400)
	call("POST", "/v1/keys", `{"keyspec":`, app, 400)
	call("GET", "/v1/keys", "", app, 200)
	call("GET", "/v1/keys", "", wrong, 401)
	call("GET", "/v1/keys/"+id, "", app, 200)
	call("GET", "/v1/keys/no-such-key", "", app, 404)
	call("POST", "/v1/keys/"+id+"/rotate", "", app, 200)
	ct := call("POST", "/v1/keys/"+id+"/encrypt", `{"plaintext":"aGVsbG8="}`, app, 200)
	call("POST", "/v1/keys/"+id+"/decrypt", strings.Replace(string(ct), "ciphertext", "ciphertext", 1), app, 200)
	call("POST", "/v1/keys/"+id+"/datakey", `{"length":32,"include_plaintext":true}`, app, 200)
	call("POST", "/v1/keys/"+id+"/release", `{"token":"x"}`, app, 400)
	call("POST", "/v1/keys/"+id+"/disable", "", app, 200)
	call("POST", "/v1/keys/"+id+"/encrypt", `{"plaintext":"aGVsbG8="}`, app, 409)
	call("POST", "/v1/keys/"+id+"/enable", "", app, 200)
	call("POST", "/v1/keys/"+id+"/schedule-deletion", `{"days":7}`, app, 200)
	call("POST", "/v1/keys/"+id+"/cancel-deletion", "", app, 200)
	call("GET", "/v1/operator/status", "", nil, 200)
	call("POST", "/v1/operator/rotate", "", admin, 200)
	call("POST", "/v1/operator/rotate", "", nil, 401)
	call("GET", "/v1/operator/rewrap", "", admin, 200)
	call("GET", "/v1/attestation/nonce", "", app, 200)
	call("GET", "/v1/attestation/jwks", "", nil, 200)
	call("GET", "/v1/attestation/policies/no-such-policy", "", app, 404)
	if len(checked) < 20 {
		t.Errorf("only %d operations checked against a live server", len(checked))
	}
}
