package client_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/client"
)

func TestShareFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shares")
	shares := []client.Share{{Index: 1, Content: []byte{1, 2, 3}}, {Index: 2, Content: []byte{4, 5}}}
	if err := client.WriteShareFiles(dir, shares); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v", st.Mode())
	}
	files := client.ShareFilesIn(dir)
	if len(files) != 2 {
		t.Fatalf("files %v", files)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "share-1.json"))
	if string(b) != "{\"content\":\"AQID\",\"index\":1}\n" {
		t.Errorf("share-1.json = %q", b)
	}
	for i, p := range []string{filepath.Join(dir, "share-1.json"), filepath.Join(dir, "share-2.json")} {
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", p, st.Mode())
		}
		s, err := client.ReadShareFile(p)
		if err != nil || s.Index != shares[i].Index || !bytes.Equal(s.Content, shares[i].Content) {
			t.Errorf("%s: %+v, %v", p, s, err)
		}
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("nope"), 0o600)
	if _, err := client.ReadShareFile(bad); err == nil || !strings.HasPrefix(err.Error(), bad+` is not a share file {"index":N,"content":"..."}: `) {
		t.Errorf("not JSON: %v", err)
	}
	os.WriteFile(bad, []byte(`{"index":1,"content":"%%"}`), 0o600)
	if _, err := client.ReadShareFile(bad); err == nil || err.Error() != bad+": content is not base64" {
		t.Errorf("not base64: %v", err)
	}
	if client.ShareFilesIn(t.TempDir()) != nil {
		t.Error("an empty directory holds share files")
	}
}

func TestTokenFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "alice.token")
	tok, created, err := client.ReadOrCreateTokenFile(p)
	if err != nil || !created || len(tok) < 32 {
		t.Fatalf("create: %q %v %v", tok, created, err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
	again, created, err := client.ReadOrCreateTokenFile(p)
	if err != nil || created || again != tok {
		t.Fatalf("read back: %q %v %v", again, created, err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if _, _, err := client.ReadOrCreateTokenFile(empty); err == nil || !strings.Contains(err.Error(), "is empty: put the user's token in it") {
		t.Errorf("empty: %v", err)
	}
	if _, _, err := client.ReadOrCreateTokenFile(filepath.Join(dir, "no", "dir")); err == nil || !strings.HasPrefix(err.Error(), "writing --bigdl-token-file: ") {
		t.Errorf("unwritable: %v", err)
	}

	admin := filepath.Join(dir, "admin.token")
	os.WriteFile(admin, []byte(" secret-admin-token \r\n"), 0o600)
	if got := client.ReadAdminTokenFile(admin); got != " secret-admin-token" {
		t.Errorf("admin token %q", got)
	}
	if got := client.ReadAdminTokenFile(filepath.Join(dir, "missing")); got != "" {
		t.Errorf("missing admin token file: %q", got)
	}
}
