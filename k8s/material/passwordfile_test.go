package material

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadPasswordFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pw")
	os.WriteFile(p, []byte("old pw\r\n\n"), 0o600)
	if pw, err := ReadPasswordFile(p, nil); err != nil || string(pw) != "old pw" {
		t.Fatalf("%q %v", pw, err)
	}
	if pw, err := ReadPasswordFile("-", strings.NewReader("x\n")); err != nil || string(pw) != "x" {
		t.Fatalf("stdin: %q %v", pw, err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := ReadPasswordFile(empty, nil); err == nil || err.Error() != "--password-file "+empty+" is empty" {
		t.Errorf("empty: %v", err)
	}
	if _, err := ReadPasswordFile(filepath.Join(dir, "missing"), nil); err == nil || !strings.HasPrefix(err.Error(), "--password-file: open ") {
		t.Errorf("missing: %v", err)
	}
}
