package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/server"
)

// The start-up log names the self-signed CA's SHA-256 (what clients trust,
// stable across leaf renewals), and it is that of tls/ca.crt.
func TestLoggedCAFingerprint(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	srv, err := server.New(t.Context(), server.Config{DataDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	b, err := os.ReadFile(filepath.Join(dir, "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	sum := sha256.Sum256(blk.Bytes)
	var hex []string
	for _, c := range sum {
		hex = append(hex, fmt.Sprintf("%02X", c))
	}
	if want := "ca_sha256=" + strings.Join(hex, ":"); !strings.Contains(logs.String(), want) {
		t.Fatalf("log lacks %s:\n%s", want, logs.String())
	}
}
