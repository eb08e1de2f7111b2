package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func entries(t *testing.T, dir string) []string {
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestCommit(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.bin")
	f, err := Create(p, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("partial"))
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("target visible before commit")
	}
	if !IsTemp(filepath.Base(f.Name())) {
		t.Fatalf("temp name %q not recognised", f.Name())
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := f.Abort(); err != nil {
		t.Fatal("abort after commit:", err)
	}
	b, _ := os.ReadFile(p)
	if string(b) != "partial" {
		t.Fatalf("content %q", b)
	}
	if n := entries(t, dir); len(n) != 1 {
		t.Fatalf("entries %v", n)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", st.Mode())
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.bin")
	os.WriteFile(p, []byte("old"), 0o600)
	f, err := Create(p, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("new data"))
	f.Abort()
	if n := entries(t, dir); len(n) != 1 || n[0] != "out.bin" {
		t.Fatalf("entries %v", n)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("old content replaced: %q", b)
	}
	if err := WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(filepath.Join(dir, "nodir", "f"), 0o600); err == nil {
		t.Fatal("create in missing dir succeeded")
	}
}
