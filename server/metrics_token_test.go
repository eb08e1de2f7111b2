package server_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
)

// /metrics can require a bearer token (--metrics-token-file).
func TestMetricsToken(t *testing.T) {
	tokFile := filepath.Join(t.TempDir(), "metrics.token")
	os.WriteFile(tokFile, []byte("metrics-token-0123456789\n"), 0o600)
	inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) { c.MetricsTokenFile = tokFile }})
	h, _ := client.HTTPClient(inst.CAFile, 0)
	get := func(tok string) (int, string) {
		req, _ := http.NewRequest("GET", inst.URL+"/metrics", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := h.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, readAll(t, resp)
	}
	if code, body := get(""); code != 401 || !strings.Contains(body, "metrics-token-file") || strings.Contains(body, "ppml_") {
		t.Fatalf("no token: %d %s", code, body)
	}
	if code, _ := get("metrics-token-wrong"); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	if code, body := get("metrics-token-0123456789"); code != 200 || !strings.Contains(body, "ppml_kms_sealed") {
		t.Fatalf("token: %d", code)
	}
	// Health probes stay open.
	if resp, err := h.Get(inst.URL + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v", err)
	}
	// A short token is refused at start.
	os.WriteFile(tokFile, []byte("short"), 0o600)
	if _, err := server.New(t.Context(), server.Config{DataDir: t.TempDir(), MetricsTokenFile: tokFile}); err == nil || !strings.Contains(err.Error(), "shorter than 16") {
		t.Fatalf("short token: %v", err)
	}
}
