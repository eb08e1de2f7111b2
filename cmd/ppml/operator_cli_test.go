package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/client"
)

// TestOperatorInitUnsealCLI: the documented Shamir workflow with the built
// binary against `ppml serve --root-key-provider shamir`: init writes five
// 0600 share files and prints none of them, the restarted service is
// sealed until three shares were given to `ppml operator unseal`, and keys
// made before the restart still decrypt afterwards.
func TestOperatorInitUnsealCLI(t *testing.T) {
	dataDir := t.TempDir()
	serve, url := startServe(t, dataDir, "--root-key-provider", "shamir")
	ca := filepath.Join(dataDir, "tls", "server.crt")
	token := filepath.Join(dataDir, "admin.token")
	env := []string{"PPML_KMS=" + url, "PPML_CA_FILE=" + ca}
	op := func(args ...string) (string, error) {
		t.Helper()
		return runCLI(t, env, append([]string{"operator"}, append(args, "--admin-token-file", token)...)...)
	}
	status := func() map[string]any {
		t.Helper()
		out, err := op("status", "--output", "json")
		if err != nil {
			t.Fatal(err)
		}
		var st map[string]any
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status JSON: %v\n%s", err, out)
		}
		return st
	}
	if st := status(); st["sealed"] != true || st["initialized"] != false || st["root_key_provider"] != "shamir" {
		t.Fatalf("fresh shamir server: %v", st)
	}
	if _, err := op("init"); err == nil || !strings.Contains(err.Error(), "--shares-dir is required") {
		t.Fatalf("init without --shares-dir: %v", err)
	}

	// A directory holding another KMS's shares is refused before anything is created.
	used := t.TempDir()
	os.WriteFile(filepath.Join(used, "share-1.json"), []byte("a custodian's share\n"), 0o600)
	if _, err := op("init", "--shares-dir", used); err == nil || !strings.Contains(err.Error(), "already holds share files") {
		t.Fatalf("init into a directory with shares: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(used, "share-1.json")); string(b) != "a custodian's share\n" {
		t.Fatal("an existing share file was overwritten")
	}
	if st := status(); st["initialized"] != false {
		t.Fatalf("refused init initialised the server: %v", st)
	}

	shares := filepath.Join(t.TempDir(), "shares")
	out, err := op("init", "--shares-dir", shares)
	if err != nil || !strings.Contains(out, "root key created; 5 shares written to "+shares+" (any 3 unseal)") {
		t.Fatalf("init: %q %v", out, err)
	}
	if st, err := os.Stat(shares); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("shares dir: %v", err)
	}
	var files []string
	for i := 1; i <= 5; i++ {
		p := filepath.Join(shares, "share-"+string(rune('0'+i))+".json")
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v", p, err)
		}
		b, _ := os.ReadFile(p)
		var s struct {
			Index   int    `json:"index"`
			Content string `json:"content"`
		}
		if json.Unmarshal(b, &s) != nil || s.Index != i || s.Content == "" {
			t.Fatalf("%s: %s", p, b)
		}
		if strings.Contains(out, s.Content) {
			t.Fatal("init printed a share")
		}
		files = append(files, p)
	}
	if _, err := op("init", "--shares-dir", filepath.Join(t.TempDir(), "again")); err == nil {
		t.Fatal("second init accepted")
	}
	if st := status(); st["sealed"] != false || st["initialized"] != true {
		t.Fatalf("after init: %v", st)
	}

	// A key, used before the restart.
	eout, err := runCLI(t, env, "enroll", "--admin-token-file", token, "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	var app struct{ AppID, APIKey string }
	json.Unmarshal([]byte(eout), &app)
	n, err := client.NewNative(client.Config{URL: url, CAFile: ca, AppID: app.AppID, APIKey: app.APIKey})
	if err != nil {
		t.Fatal(err)
	}
	k, err := n.CreateKey(t.Context(), client.KeyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := n.Encrypt(t.Context(), k.ID, []byte("before the restart"), nil)
	if err != nil {
		t.Fatal(err)
	}

	// Restart: sealed, not ready, refusing key operations.
	serve.Process.Kill()
	serve.Wait()
	_, url = startServe(t, dataDir, "--root-key-provider", "shamir")
	env = []string{"PPML_KMS=" + url, "PPML_CA_FILE=" + ca}
	n, _ = client.NewNative(client.Config{URL: url, CAFile: ca, AppID: app.AppID, APIKey: app.APIKey})
	if st := status(); st["sealed"] != true || st["initialized"] != true {
		t.Fatalf("restarted: %v", st)
	}
	h, _ := client.HTTPClient(ca, 0)
	if resp, err := h.Get(url + "/readyz"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while sealed: %v", err)
	} else {
		resp.Body.Close()
	}
	if _, err := n.Decrypt(t.Context(), k.ID, ct, nil); err == nil {
		t.Fatal("sealed KMS decrypted")
	}

	// Bad input is named.
	if _, err := op("unseal"); err == nil || !strings.Contains(err.Error(), "at least one --share-file") {
		t.Fatalf("unseal without shares: %v", err)
	}
	junk := filepath.Join(t.TempDir(), "junk.json")
	os.WriteFile(junk, []byte("not a share"), 0o600)
	if _, err := op("unseal", "--share-file", junk); err == nil || !strings.Contains(err.Error(), junk+" is not a share file") {
		t.Fatalf("unseal with a junk file: %v", err)
	}

	// Two shares are not enough; the third unseals (shares 2, 4, 5: any 3).
	out, err = op("unseal", "--share-file", files[1], "--share-file", files[3])
	if err != nil || !strings.Contains(out, "share 2 accepted (1/3)") || !strings.Contains(out, "share 4 accepted (2/3)") {
		t.Fatalf("two shares: %q %v", out, err)
	}
	if st := status(); st["sealed"] != true {
		t.Fatal("unsealed by two shares")
	}
	out, err = op("unseal", "--share-file", files[4])
	if err != nil || strings.TrimSpace(out) != "unsealed" {
		t.Fatalf("third share: %q %v", out, err)
	}
	if st := status(); st["sealed"] != false {
		t.Fatalf("after three shares: %v", st)
	}
	pt, err := n.Decrypt(t.Context(), k.ID, ct, nil)
	if err != nil || string(pt) != "before the restart" {
		t.Fatalf("decrypt after unseal: %q %v", pt, err)
	}
}
