package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml-project/ppml/audit"
	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
)

func TestNativeAPIBadInput(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{})
	_, cfg := inst.Enroll(t)
	n, _ := client.NewNative(cfg)
	ctx := context.Background()
	k, _ := n.CreateKey(ctx, client.KeyOptions{Spec: "EH_AES_GCM_256"})
	h, _ := client.HTTPClient(inst.CAFile, 0)
	do := func(method, path, body string, auth bool) (int, string) {
		req, _ := http.NewRequest(method, inst.URL+path, strings.NewReader(body))
		if auth {
			req.SetBasicAuth(cfg.AppID, cfg.APIKey)
		}
		resp, err := h.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct {
			Error struct{ Code, Message string }
		}
		data, _ := io.ReadAll(resp.Body)
		json.Unmarshal(data, &e)
		return resp.StatusCode, e.Error.Message
	}
	for _, c := range []struct {
		name, method, path, body string
		auth                     bool
		code                     int
		msg                      string
	}{
		{"no credentials", "GET", "/v1/keys", "", false, 401, "HTTP Basic"},
		{"malformed json", "POST", "/v1/keys/" + k.ID + "/encrypt", `{"plaintext":`, true, 400, "not valid JSON"},
		{"unknown field", "POST", "/v1/keys/" + k.ID + "/encrypt", `{"plaintxt":"aGk="}`, true, 400, "unknown field"},
		{"wrong type", "POST", "/v1/keys/" + k.ID + "/datakey", `{"length":"32"}`, true, 400, `field "length"`},
		{"bad base64", "POST", "/v1/keys/" + k.ID + "/encrypt", `{"plaintext":"!!"}`, true, 400, "base64"},
		{"empty plaintext", "POST", "/v1/keys/" + k.ID + "/encrypt", `{}`, true, 400, "plaintext must be"},
		{"missing ciphertext", "POST", "/v1/keys/" + k.ID + "/decrypt", `{}`, true, 400, "ciphertext"},
		{"unknown key", "POST", "/v1/keys/11111111-2222-4333-8444-555555555555/encrypt", `{"plaintext":"aGk="}`, true, 404, "no key"},
		{"unknown spec", "POST", "/v1/keys", `{"keyspec":"DES"}`, true, 400, "not a key spec"},
		{"huge body", "POST", "/v1/keys/" + k.ID + "/encrypt", `{"plaintext":"` + strings.Repeat("A", 1<<20) + `"}`, true, 400, "larger than 1 MiB"},
		{"unknown route", "GET", "/v1/nothing", "", true, 404, "no API route"},
		{"enroll without admin token", "POST", "/v1/apps", "", false, 401, "admin credential"},
	} {
		if code, msg := do(c.method, c.path, c.body, c.auth); code != c.code || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %d %q, want %d containing %q", c.name, code, msg, c.code, c.msg)
		}
	}
	// Disabled key: a conflict, with what to do.
	n.KeyAction(ctx, k.ID, "disable", nil)
	if code, msg := do("POST", "/v1/keys/"+k.ID+"/encrypt", `{"plaintext":"aGk="}`, true); code != 409 || !strings.Contains(msg, "enable it") {
		t.Errorf("disabled key: %d %q", code, msg)
	}
}

func TestAuditAndMetrics(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{})
	e, cfg := inst.Enroll(t)
	ctx := context.Background()
	keyID, _ := e.CreateKey(ctx, "EH_AES_GCM_256")
	ct, _ := e.GenerateDataKeyWithoutPlaintext(ctx, keyID, 32, "dGVzdA==")
	pt, _ := e.Decrypt(ctx, keyID, ct, "dGVzdA==")
	e.Decrypt(ctx, keyID, ct, "")

	h, _ := client.HTTPClient(inst.CAFile, 0)
	resp, err := h.Get(inst.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics := readAll(t, resp)
	for _, want := range []string{
		`ppml_requests_total{action="Decrypt",api="ehsm",result="ok"} 1`,
		`ppml_requests_total{action="Decrypt",api="ehsm",result="decrypt_failed"} 1`,
		`ppml_requests_total{action="CreateKey",api="ehsm",result="ok"} 1`,
		`ppml_request_duration_seconds_bucket{action="GenerateDataKeyWithoutPlaintext",api="ehsm"`,
		`ppml_kms_keys{state="Enabled"} 1`,
		`ppml_kms_sealed 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	inst.Stop()
	f, err := os.Open(filepath.Join(inst.DataDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]audit.Event{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		for _, secret := range []string{cfg.APIKey, pt, inst.AdminToken} {
			if strings.Contains(line, secret) {
				t.Fatalf("audit log contains a secret: %s", line)
			}
		}
		var ev audit.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("audit line is not JSON: %s", line)
		}
		seen[ev.Action+"/"+ev.Result] = ev
	}
	for _, want := range []string{"Enroll/ok", "CreateKey/ok", "GenerateDataKeyWithoutPlaintext/ok", "Decrypt/ok", "Decrypt/decrypt_failed"} {
		ev, ok := seen[want]
		if !ok {
			t.Errorf("no audit record %s", want)
			continue
		}
		if want != "Enroll/ok" && (ev.Principal != cfg.AppID || ev.KeyID != keyID || ev.API != "ehsm") {
			t.Errorf("audit record %s lacks who/what: %+v", want, ev)
		}
	}
	if ev := seen["Decrypt/decrypt_failed"]; ev.Reason == "" {
		t.Error("refusal recorded without a reason")
	}
}

func TestPlainHTTPOnlyWhenAsked(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{})
	addr := strings.TrimPrefix(inst.URL, "https://")
	// What the listener speaks, asked on the wire rather than read from the
	// URL the test helper built: plain HTTP gets no answer but TLS's
	// refusal, and a TLS handshake verifies against the server's CA.
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	reply, _ := io.ReadAll(conn)
	conn.Close()
	if bytes.HasPrefix(reply, []byte("HTTP/1.1 200")) || !bytes.Contains(reply, []byte("HTTPS server")) {
		t.Fatalf("plain HTTP to the default listener got %q, want TLS's refusal", reply)
	}
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(inst.CAFile)
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate in", inst.CAFile)
	}
	tc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS handshake with the server's CA: %v", err)
	}
	if v := tc.ConnectionState().Version; v < tls.VersionTLS12 {
		t.Fatalf("TLS version %x", v)
	}
	tc.Close()
	// A client without the CA refuses the self-signed certificate.
	plain := &http.Client{}
	if _, err := plain.Get(inst.URL + "/healthz"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("unverified TLS accepted: %v", err)
	}
	// The certificate is reused on restart.
	before, _ := os.ReadFile(inst.CAFile)
	inst.Stop()
	again := servertest.Start(t, servertest.Options{DataDir: inst.DataDir})
	after, _ := os.ReadFile(again.CAFile)
	if string(before) != string(after) {
		t.Fatal("self-signed certificate regenerated on restart")
	}
	// --insecure-http serves plain HTTP, and only then.
	plainSrv := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) { c.InsecureHTTP = true }})
	resp, err := plain.Get(plainSrv.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("--insecure-http server over plain HTTP: %v", err)
	}
	resp.Body.Close()
	if _, err := tls.Dial("tcp", strings.TrimPrefix(plainSrv.URL, "http://"), &tls.Config{InsecureSkipVerify: true}); err == nil {
		t.Fatal("--insecure-http server completed a TLS handshake")
	}
}
