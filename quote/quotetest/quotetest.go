// Package quotetest gives tests the real Intel DCAP vectors kept in the
// repository, quote/testdata/dcap (quotes, collateral, expected verdicts,
// licences and SHA256SUMS; see its README.md). A vector that cannot be read
// fails the test: it is part of every clone, so there is nothing to skip.
package quotetest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// Names lists every vector folder.
var Names = []string{"sgx-phala", "tdx-v4-oasis", "tdx-v4-oasis-out-of-date"}

// Dir is the absolute path of quote/testdata/dcap, found from this source
// file so that tests in any package (and commands they run in other working
// directories) reach the same files.
func Dir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("quotetest: no caller information")
	}
	return filepath.Join(filepath.Dir(file), "..", "testdata", "dcap")
}

// Path is the absolute path of a file in the vector set, e.g.
// Path("sgx-phala", "quote.bin").
func Path(elem ...string) string {
	return filepath.Join(append([]string{Dir()}, elem...)...)
}

// Read returns a file of the vector set and fails the test if it cannot.
func Read(t testing.TB, elem ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(Path(elem...))
	if err != nil {
		t.Fatalf("DCAP test vector missing from the repository (quote/testdata/dcap): %v", err)
	}
	return b
}

// Vector is one vector folder's quote, raw collateral JSON and expected
// verdict.
type Vector struct {
	Name       string
	Quote      []byte
	Collateral []byte
	Expected   map[string]any
	// At is the evaluation time of the expected verdict.
	At time.Time
}

// Load reads one vector folder and fails the test if anything is missing.
func Load(t testing.TB, name string) *Vector {
	t.Helper()
	v := &Vector{Name: name, Quote: Read(t, name, "quote.bin"), Collateral: Read(t, name, "collateral.json")}
	if err := json.Unmarshal(Read(t, name, "expected.json"), &v.Expected); err != nil {
		t.Fatalf("%s/expected.json: %v", name, err)
	}
	s, _ := v.Expected["at"].(string)
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("%s/expected.json: at: %v", name, err)
	}
	v.At = at
	return v
}
