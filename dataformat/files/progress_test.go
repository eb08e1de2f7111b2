package files

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/dataformat/keysource"
)

// The bar is fed by a real run: it names the verb and the file count, and
// finish clears its line.
func TestProgressBarFollowsARun(t *testing.T) {
	in := t.TempDir()
	for _, n := range []string{"a", "b"} {
		os.WriteFile(filepath.Join(in, n), bytes.Repeat([]byte("x"), 3000), 0o600)
	}
	keys, err := keysource.NewPlainText("EREREREREREREREREREREQ==")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	opt := Options{Format: FormatPPML, Keys: keys}
	finish := progressTo(&out, "encrypt", &opt)
	if _, err := Encrypt(context.Background(), in, filepath.Join(t.TempDir(), "out"), opt); err != nil {
		t.Fatal(err)
	}
	finish()
	if s := out.String(); !strings.HasPrefix(s, "\rencrypt 2 file(s) ") || !strings.Contains(s, "%") || !strings.HasSuffix(s, strings.Repeat(" ", 20)+"\r") {
		t.Errorf("bar output %q", s)
	}
}

// Nothing is drawn on what is not a terminal.
func TestShowProgressOnlyOnATerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var opt Options
	ShowProgress(f, "decrypt", &opt)()
	if opt.Start != nil || opt.Progress != nil {
		t.Fatal("progress hooks set for a plain file")
	}
}
