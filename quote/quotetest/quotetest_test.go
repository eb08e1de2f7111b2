package quotetest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestSHA256SUMS checks every file of the vector set against SHA256SUMS and
// that no file is unlisted, so an edited or added vector cannot pass unseen.
func TestSHA256SUMS(t *testing.T) {
	listed := map[string]bool{"SHA256SUMS": true}
	sc := bufio.NewScanner(bytes.NewReader(Read(t, "SHA256SUMS")))
	for sc.Scan() {
		sum, name, ok := bytes.Cut(sc.Bytes(), []byte("  "))
		if !ok {
			t.Fatalf("SHA256SUMS: malformed line %q", sc.Text())
		}
		got := sha256.Sum256(Read(t, filepath.FromSlash(string(name))))
		if hex.EncodeToString(got[:]) != string(sum) {
			t.Errorf("%s: SHA-256 %x, SHA256SUMS says %s", name, got, sum)
		}
		listed[string(name)] = true
	}
	if len(listed) < 14 {
		t.Fatalf("SHA256SUMS lists %d files, want the 13 files of the set", len(listed)-1)
	}
	err := fs.WalkDir(os.DirFS(Dir()), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !listed[p] {
			t.Errorf("%s is not listed in SHA256SUMS", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range Names {
		v := Load(t, n)
		if v.Expected["case"] != n || len(v.Quote) < 1000 {
			t.Errorf("%s: expected.json case %v, quote %d bytes", n, v.Expected["case"], len(v.Quote))
		}
	}
}
