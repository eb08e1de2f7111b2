//go:build cgo

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSQLCLILocalKeyFile(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	dir := t.TempDir()
	key := filepath.Join(dir, "key.txt")
	os.WriteFile(key, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600)
	in := filepath.Join(dir, "people.csv")
	os.WriteFile(in, []byte("name,age,job\nann,30,Developer\nbob,50,Tester\n"), 0o600)
	if out, err := runCrypt(t, true, "--in", in, "--out", in+".ppml", "--primary-key-plaintext-file", key); err != nil {
		t.Fatalf("encrypt: %v %s", err, out)
	}
	os.Remove(in)
	run := func(args ...string) (string, error) {
		cmd := newSQLCmd()
		var b bytes.Buffer
		cmd.SetOut(&b)
		cmd.SetErr(&b)
		cmd.SetArgs(args)
		err := cmd.Execute()
		return b.String(), err
	}
	out := filepath.Join(dir, "res.csv.ppml")
	msg, err := run("--input", "people="+in+".ppml", "--query", "SELECT name FROM people WHERE age < 40", "--output", out, "--primary-key-plaintext-file", key)
	if err != nil || !strings.Contains(msg, "1 row(s)") {
		t.Fatalf("sql: %v %s", err, msg)
	}
	if o, err := runCrypt(t, false, "--in", out, "--out", filepath.Join(dir, "res.csv"), "--primary-key-plaintext-file", key); err != nil {
		t.Fatalf("decrypt: %v %s", err, o)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "res.csv")); string(b) != "name\nann\n" {
		t.Fatalf("result %q", b)
	}
	if _, err := run("--input", "people="+in+".ppml", "--query", "SELECT 1", "--output", filepath.Join(dir, "x")); err == nil || !strings.Contains(err.Error(), "no key source") {
		t.Fatalf("no key source: %v", err)
	}
	if _, err := run("--input", "bad", "--query", "SELECT 1", "--output", filepath.Join(dir, "x"), "--primary-key-plaintext-file", key); err == nil || !strings.Contains(err.Error(), "NAME=PATH") {
		t.Fatalf("bad input flag: %v", err)
	}
}
