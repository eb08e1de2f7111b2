package server_test

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Everything under the data directory is private (files 0600, directories
// 0700): created so, and tightened at start, with a log line, when an
// earlier release or an operator left it wider.
func TestDataDirPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(dir, "extra"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "extra", "notes.txt"), []byte("x"), 0o644)
	var logs syncBuffer
	inst := servertest.Start(t, servertest.Options{DataDir: dir, Modify: func(c *server.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	}})
	// Writes that create the SQLite -wal and -shm files.
	_, cfg := inst.Enroll(t)
	n, _ := client.NewNative(cfg)
	if _, err := n.CreateKey(context.Background(), client.KeyOptions{}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Lstat(p)
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if st.Mode().Perm()&^want != 0 {
			t.Errorf("%s: mode %v, want at most %v", p, st.Mode().Perm(), want)
		}
		seen[filepath.Base(p)] = true
		return nil
	})
	for _, f := range []string{"ppml.db", "ppml.db-wal", "root.key", "admin.token", "notes.txt"} {
		if !seen[f] {
			t.Errorf("no %s in the data directory (seen %v)", f, seen)
		}
	}
	for _, p := range []string{dir, filepath.Join(dir, "extra"), filepath.Join(dir, "extra", "notes.txt")} {
		if !strings.Contains(logs.String(), "tightened permissions") || !strings.Contains(logs.String(), "path="+p+" ") {
			t.Errorf("no log line for %s:\n%s", p, logs.String())
		}
	}
}
