package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCrypt(t *testing.T, encrypt bool, args ...string) (string, error) {
	t.Helper()
	cmd := newDecryptCmd()
	if encrypt {
		cmd = newEncryptCmd()
	}
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestCryptCLI(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key.txt")
	os.WriteFile(key, []byte("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"), 0o600)
	in := filepath.Join(dir, "in")
	os.MkdirAll(filepath.Join(in, "sub"), 0o755)
	os.WriteFile(filepath.Join(in, "a.csv"), []byte("name,age\nalice,30\n"), 0o644)
	os.WriteFile(filepath.Join(in, "sub", "b.csv"), bytes.Repeat([]byte("x,1\n"), 50000), 0o644)
	for _, format := range []string{"ppml", "bigdl"} {
		enc := filepath.Join(dir, "enc-"+format)
		dec := filepath.Join(dir, "dec-"+format)
		if out, err := runCrypt(t, true, "--in", in, "--out", enc, "--format", format, "--primary-key-plaintext-file", key); err != nil {
			t.Fatalf("%s encrypt: %v\n%s", format, err, out)
		}
		if format == "bigdl" {
			for _, p := range []string{"a.csv.cbc", ".meta", "sub/b.csv.cbc", "sub/.meta"} {
				if _, err := os.Stat(filepath.Join(enc, p)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if out, err := runCrypt(t, false, "--in", enc, "--out", dec, "--primary-key-plaintext-file", key); err != nil {
			t.Fatalf("%s decrypt: %v\n%s", format, err, out)
		}
		for _, p := range []string{"a.csv", "sub/b.csv"} {
			a, _ := os.ReadFile(filepath.Join(in, p))
			b, _ := os.ReadFile(filepath.Join(dec, p))
			if !bytes.Equal(a, b) {
				t.Fatalf("%s: %s differs", format, p)
			}
		}
	}
	if _, err := runCrypt(t, true, "--in", in, "--out", filepath.Join(dir, "x")); err == nil || !strings.Contains(err.Error(), "--primary-key-plaintext-file") {
		t.Fatalf("missing key source: %v", err)
	}
	if _, err := runCrypt(t, true, "--in", in, "--out", filepath.Join(dir, "x"), "--format", "zip", "--primary-key-plaintext-file", key); err == nil {
		t.Fatal("bad format accepted")
	}
	os.WriteFile(filepath.Join(dir, "badkey"), []byte("not base64\n"), 0o600)
	if _, err := runCrypt(t, true, "--in", in, "--out", filepath.Join(dir, "x"), "--primary-key-plaintext-file", filepath.Join(dir, "badkey")); err == nil || !strings.Contains(err.Error(), "base64") {
		t.Fatalf("bad key file: %v", err)
	}
}
