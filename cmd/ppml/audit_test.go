package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ppml audit verify on the log of a real ppml serve: intact after a clean
// stop (which writes a checkpoint), and the first altered record named.
func TestAuditVerifyCLI(t *testing.T) {
	dir := t.TempDir()
	srv, url := startServe(t, dir)
	admin := filepath.Join(dir, "admin.token")
	for i := 0; i < 3; i++ {
		if out, errs, code := runPPML(t, "", "enroll", "--kms", url, "--ca-file", filepath.Join(dir, "tls", "server.crt"), "--admin-token-file", admin); code != 0 {
			t.Fatalf("enroll: %s %s", out, errs)
		}
	}
	srv.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("ppml serve did not stop")
	}
	log := filepath.Join(dir, "audit.log")
	out, errs, code := runPPML(t, "", "audit", "verify", log)
	if code != 0 || !strings.Contains(out, "ok: ") || !strings.Contains(out, "0 record(s) after it") {
		t.Fatalf("intact log: %d %s %s", code, out, errs)
	}
	b, _ := os.ReadFile(log)
	lines := strings.SplitAfter(string(b), "\n")
	i := 2
	for !strings.Contains(lines[i], `"action":"Enroll"`) {
		i++
	}
	lines[i] = strings.Replace(lines[i], `"action":"Enroll"`, `"action":"EnrolI"`, 1)
	os.WriteFile(log, []byte(strings.Join(lines, "")), 0o600)
	out, errs, code = runPPML(t, "", "audit", "verify", log)
	if n := strconv.Itoa(i + 1); code != 1 || !strings.Contains(errs, "record "+n+" (line "+n+") was altered") {
		t.Fatalf("altered log: %d %s %s", code, out, errs)
	}
	if _, errs, code := runPPML(t, "", "audit", "verify", log, "--public-key", filepath.Join(dir, "nope.pub")); code == 0 || !strings.Contains(errs, "--public-key") {
		t.Fatalf("missing key: %s", errs)
	}
}
