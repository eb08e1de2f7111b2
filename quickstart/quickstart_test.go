package quickstart

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestQuickstart runs the whole workflow and checks the count against an
// independent computation on the plaintext dataset.
func TestQuickstart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "qs")
	var out bytes.Buffer
	sum, err := Run(context.Background(), Options{Dir: dir, Rows: 5000, Out: &out})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	f, err := os.Open(filepath.Join(dir, "data", "people.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, r := range rows[1:] {
		age, _ := strconv.Atoi(r[1])
		if r[2] == "Developer" && age >= 20 && age <= 40 {
			want++
		}
	}
	if want == 0 || sum.Count != want {
		t.Fatalf("query returned %d developers aged 20-40, the plaintext has %d", sum.Count, want)
	}
	if !strings.Contains(out.String(), strconv.Itoa(want)+" developers aged 20 to 40") {
		t.Fatalf("the count is not printed:\n%s", out.String())
	}
	if !strings.Contains(sum.Refusal, "mr_enclave") {
		t.Fatalf("refusal does not name the mismatched measurement: %q", sum.Refusal)
	}
	for _, s := range []string{"SIMULATION", "$ ppml serve", "$ ppml sql --force --attest", "$ ppml decrypt", "commands.sh"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("narration lacks %q", s)
		}
	}
	// No plaintext of the input outside data/ (the owner's side) and the
	// owner-decrypted result.
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.HasSuffix(p, ".csv") && !strings.HasSuffix(p, "data/people.csv") && !strings.HasSuffix(p, "result/developers.csv") {
			t.Errorf("unexpected plaintext file %s", p)
		}
		return nil
	})
	// A second run replaces its own directory; a foreign directory is refused.
	if _, err := Run(context.Background(), Options{Dir: dir, Rows: 10}); err != nil {
		t.Fatalf("re-run: %v", err)
	}
	foreign := t.TempDir()
	os.WriteFile(filepath.Join(foreign, "precious"), []byte("x"), 0o600)
	if _, err := Run(context.Background(), Options{Dir: foreign, Rows: 10}); err == nil || !strings.Contains(err.Error(), "not made by ppml quickstart") {
		t.Fatalf("foreign directory: %v", err)
	}
}
