package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The operator's root key commands against a real `ppml serve --root-key-provider shamir`.
func TestOperatorInitRotateRekeyRewrap(t *testing.T) {
	dataDir := t.TempDir()
	cmd, url := startServe(t, dataDir, "--root-key-provider", "shamir")
	env := []string{"PPML_KMS=" + url, "PPML_CA_FILE=" + filepath.Join(dataDir, "tls", "server.crt")}
	tok := filepath.Join(dataDir, "admin.token")
	op := func(args ...string) (string, error) {
		return runCLI(t, env, append(append([]string{"operator"}, args...), "--admin-token-file", tok)...)
	}
	shareFiles := func(dir string) []string {
		t.Helper()
		files, _ := filepath.Glob(filepath.Join(dir, "share-*.json"))
		if len(files) != 5 {
			t.Fatalf("%d share files in %s, want 5", len(files), dir)
		}
		for _, f := range files {
			if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s: mode %v %v, want 0600", f, fi.Mode().Perm(), err)
			}
		}
		return files
	}
	first, rekeyed := filepath.Join(t.TempDir(), "shares"), filepath.Join(t.TempDir(), "new-shares")
	if _, err := op("init", "--shares-dir", first); err != nil {
		t.Fatal(err)
	}
	oldShares := shareFiles(first)
	if _, err := op("init", "--shares-dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "ppml operator rotate") || !strings.Contains(err.Error(), "ppml operator rekey") {
		t.Fatalf("init on an initialised KMS: %v", err)
	}
	if _, err := runCLI(t, env, "enroll", "--admin-token-file", tok, "--output", "json"); err != nil {
		t.Fatal(err) // an app: one root-wrapped row to re-wrap
	}
	out, err := op("rotate", "--output", "json")
	var rot struct{ Term int }
	if json.Unmarshal([]byte(out), &rot); err != nil || rot.Term != 2 {
		t.Fatalf("rotate: %q %v", out, err)
	}
	if _, err := op("rekey", "--shares-dir", first); err == nil || !strings.Contains(err.Error(), "already holds share files") {
		t.Fatalf("rekey into the directory of the current shares: %v", err)
	}
	if _, err := op("rekey", "--shares-dir", rekeyed); err != nil {
		t.Fatal(err)
	}
	newShares := shareFiles(rekeyed)
	out, err = op("rewrap", "--output", "json")
	var rw struct {
		Term, Scanned, Rewrapped int
		Done                     bool
	}
	if json.Unmarshal([]byte(out), &rw); err != nil || !rw.Done || rw.Term != 2 || rw.Rewrapped < 1 {
		t.Fatalf("rewrap: %q %v", out, err)
	}
	out, err = op("status")
	if err != nil || !strings.Contains(out, "root key term: 2") {
		t.Fatalf("status: %q %v", out, err)
	}

	// After a restart only the new shares unseal.
	cmd.Process.Kill()
	cmd.Wait()
	_, url = startServe(t, dataDir, "--root-key-provider", "shamir")
	env[0] = "PPML_KMS=" + url
	args := []string{"unseal"}
	for _, f := range oldShares[:3] {
		args = append(args, "--share-file", f)
	}
	if _, err := op(args...); err == nil {
		t.Fatal("the shares replaced by the rekey still unseal")
	}
	args = []string{"unseal"}
	for _, f := range newShares[2:] {
		args = append(args, "--share-file", f)
	}
	if out, err := op(args...); err != nil || !strings.Contains(out, "unsealed") {
		t.Fatalf("unseal with the new shares: %q %v", out, err)
	}
}
