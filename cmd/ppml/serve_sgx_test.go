package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestGramineArgvFlagsExist: every flag the Gramine manifest's measured
// command line passes is one ppml serve has.
func TestGramineArgvFlagsExist(t *testing.T) {
	b, err := os.ReadFile("../../deploy/gramine/ppml.manifest.template")
	if err != nil {
		t.Fatal(err)
	}
	argv := regexp.MustCompile(`(?s)loader\.argv = \[(.*?)\]`).FindSubmatch(b)
	if argv == nil {
		t.Fatal("no loader.argv")
	}
	root := newRootCmd()
	serve, _, err := root.Find([]string{"serve"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range regexp.MustCompile(`"--([a-z0-9-]+)`).FindAllSubmatch(argv[1], -1) {
		n++
		if serve.Flags().Lookup(string(m[1])) == nil && root.PersistentFlags().Lookup(string(m[1])) == nil {
			t.Errorf("the Gramine manifest passes --%s, which ppml serve does not have", m[1])
		}
	}
	if n < 10 {
		t.Fatalf("found %d flags", n)
	}
}

// TestServeAdminTokenHashAndTLSInMemory: with --admin-token-sha256 the
// server holds no token (none is created) and accepts the token whose
// hash it has; with --tls-in-memory no private key reaches the disk.
func TestServeAdminTokenHashAndTLSInMemory(t *testing.T) {
	dir := t.TempDir()
	token := "operator-kept-token-0123456789"
	sum := sha256.Sum256([]byte(token))
	_, url := startServe(t, dir, "--admin-token-sha256", hex.EncodeToString(sum[:]), "--tls-in-memory", "--tls-dns", "localhost")
	if _, err := os.Stat(filepath.Join(dir, "admin.token")); err == nil {
		t.Fatal("admin.token created although only its hash is configured")
	}
	if _, err := os.Stat(filepath.Join(dir, "tls", "server.key")); err == nil {
		t.Fatal("--tls-in-memory wrote the private key")
	}
	ca := filepath.Join(dir, "tls", "server.crt")
	good := filepath.Join(t.TempDir(), "good")
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(good, []byte(token+"\n"), 0o600)
	os.WriteFile(bad, []byte("operator-kept-token-WRONG-6789\n"), 0o600)
	if out, err := runCLI(t, nil, "enroll", "--kms", url, "--ca-file", ca, "--admin-token-file", good); err != nil || out == "" {
		t.Fatalf("enroll with the token: %v %s", err, out)
	}
	if _, err := runCLI(t, nil, "enroll", "--kms", url, "--ca-file", ca, "--admin-token-file", bad); err == nil || !strings.Contains(err.Error(), "admin token is wrong") {
		t.Fatalf("enroll with a wrong token: %v", err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--admin-token-sha256", "abcd"}, "64 hex digits"},
		{[]string{"--admin-token-sha256", hex.EncodeToString(sum[:]), "--admin-token-file", good}, "give one"},
		{[]string{"--tls-in-memory", "--tls-cert", ca, "--tls-key", ca}, "do not give --tls-cert"},
		{[]string{"--self-attestation", "gramine"}, "needs --db postgres://"},
	} {
		args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, tc.args...)
		if _, err := runCLI(t, nil, args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
