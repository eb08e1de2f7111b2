package audit_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/audit"
)

func writeLog(t *testing.T, dir string, n int) (string, []byte) {
	t.Helper()
	key, err := audit.LoadOrCreateCheckpointKey(filepath.Join(dir, "ck.key"), filepath.Join(dir, "ck.pub"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit.log")
	// Two runs: the chain continues across a restart.
	for run := 0; run < 2; run++ {
		l, err := audit.OpenFile(path, audit.SyncBatch)
		if err != nil {
			t.Fatal(err)
		}
		l.SetCheckpointKey(key)
		for i := 0; i < n; i++ {
			if err := l.Record(audit.Event{Principal: "app", Action: "Decrypt", KeyID: "k" + strconv.Itoa(run*n+i), Result: "ok"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "ck.pub"))
	return path, pub
}

func verify(t *testing.T, log, pubPEM []byte) audit.VerifyReport {
	t.Helper()
	pub, err := audit.ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(bytes.NewReader(log), pub)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// The hash chain and signed checkpoints: an intact log verifies; altering,
// removing or reordering a record, or rewriting it with recomputed hashes,
// is reported at the first record concerned.
func TestChainDetectsTampering(t *testing.T) {
	dir := t.TempDir()
	path, pub := writeLog(t, dir, 150)
	log, _ := os.ReadFile(path)
	rep := verify(t, log, pub)
	if rep.Problem != "" || rep.Checkpoints < 3 || rep.Uncovered != 0 || rep.Records < 300 {
		t.Fatalf("intact log: %+v", rep)
	}
	lines := strings.SplitAfter(string(log), "\n")
	join := func(ls []string) []byte { return []byte(strings.Join(ls, "")) }
	edit := func(i int, f func(string) string) []string {
		c := append([]string{}, lines...)
		c[i] = f(c[i])
		return c
	}
	cases := map[string]struct {
		log  []byte
		want string
	}{
		"altered":   {join(edit(10, func(s string) string { return strings.Replace(s, `"result":"ok"`, `"result":"no"`, 1) })), "record 11 (line 11) was altered"},
		"removed":   {join(append(append([]string{}, lines[:10]...), lines[11:]...)), "record(s) 11..11 were removed"},
		"reordered": {join(append(append(append([]string{}, lines[:10]...), lines[11], lines[10]), lines[12:]...)), "reordered"},
		"head cut":  {join(lines[5:]), "records 1..5 were removed"},
		"other key": {log, "no valid signature"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			key := pub
			if name == "other key" {
				_, key = writeLog(t, t.TempDir(), 1)
			}
			rep := verify(t, tc.log, key)
			if !strings.Contains(rep.Problem, tc.want) {
				t.Fatalf("%+v, want %q", rep, tc.want)
			}
		})
	}
	// Rewriting a record and recomputing every later hash (no key needed)
	// is caught by the next checkpoint's signature.
	forged := rechain(t, edit(10, func(s string) string { return strings.Replace(s, `"result":"ok"`, `"result":"no"`, 1) }))
	if rep := verify(t, forged, pub); !strings.Contains(rep.Problem, "no valid signature") {
		t.Fatalf("rechained forgery: %+v", rep)
	}
}
