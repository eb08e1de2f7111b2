package bigdlkms_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/md5"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/migrate/bigdlkms"
	"github.com/ppml-project/ppml/server/servertest"
)

// upstream writes a kms.db the way BigDL's KMS does (§3), independently of
// the package under test.
type upstream struct {
	t  *testing.T
	db *sql.DB
}

func md5b64(s string) string { h := md5.Sum([]byte(s)); return base64.StdEncoding.EncodeToString(h[:]) }

func ecbWrap(key, child []byte) string {
	block, _ := aes.NewCipher(key)
	pad := aes.BlockSize - len(child)%aes.BlockSize
	p := append(append([]byte{}, child...), bytes.Repeat([]byte{byte(pad)}, pad)...)
	out := make([]byte, len(p))
	for i := 0; i < len(p); i += aes.BlockSize {
		block.Encrypt(out[i:], p[i:i+aes.BlockSize])
	}
	return base64.StdEncoding.EncodeToString(out)
}

func (u *upstream) exec(q string, args ...any) {
	if _, err := u.db.Exec(q, args...); err != nil {
		u.t.Fatal(err)
	}
}

func random(n int) []byte { b := make([]byte, n); io.ReadFull(rand.Reader, b); return b }

func TestImportUpstreamDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kms.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{t: t, db: db}
	u.exec(`CREATE TABLE user (name TEXT PRIMARY KEY, token TEXT)`)
	u.exec(`CREATE TABLE key (user TEXT, name TEXT, data TEXT, PRIMARY KEY (user, name))`)
	root, pk := random(32), random(32)
	dk1, dk2 := random(16), random(16)
	u.exec(`INSERT INTO user VALUES (?, ?)`, md5b64("alice"), md5b64("s3cr3t-token"))
	u.exec(`INSERT INTO key VALUES (?, ?, ?)`, md5b64("alice"), md5b64("pk1"), ecbWrap(root, pk))
	u.exec(`INSERT INTO key VALUES (?, ?, ?)`, md5b64("alice"), md5b64("dk-0001"), ecbWrap(pk, dk1))
	u.exec(`INSERT INTO key VALUES (?, ?, ?)`, md5b64("alice"), md5b64("dk-0002"), ecbWrap(pk, dk2))
	db.Close()

	inst := servertest.Start(t, servertest.Options{})
	up, err := bigdlkms.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	im := bigdlkms.Import{User: "alice", Token: "s3cr3t-token", RootKey: root, PrimaryKey: "pk1", DataKeys: []string{"dk-0001", "dk-0002"}}
	svc := inst.Server.Service()

	// Mistakes change nothing.
	bad := im
	bad.Token = "wrong"
	if _, err := bad.Run(ctx, up, svc); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("wrong token: %v", err)
	}
	bad = im
	bad.RootKey = random(32)
	if _, err := bad.Run(ctx, up, svc); err == nil || !strings.Contains(err.Error(), "wrong root key") {
		t.Fatalf("wrong root key: %v", err)
	}
	bad = im
	bad.DataKeys = []string{"nope"}
	if _, err := bad.Run(ctx, up, svc); err == nil || !strings.Contains(err.Error(), "not in the upstream database") {
		t.Fatalf("unknown data key: %v", err)
	}

	rep, err := im.Run(ctx, up, svc)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Lines) != 4 {
		t.Fatalf("report %v", rep.Lines)
	}
	// Existing BigDL clients read the same data keys from ppml.
	h, _ := client.HTTPClient(inst.CAFile, 0)
	for name, want := range map[string][]byte{"dk-0001": dk1, "dk-0002": dk2} {
		resp, err := h.Get(inst.URL + "//dataKey/" + name + "?token=s3cr3t-token&user=alice&primaryKeyName=pk1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != base64.StdEncoding.EncodeToString(want) {
			t.Fatalf("GET /dataKey/%s after import: %d %q", name, resp.StatusCode, body)
		}
	}
	// A second run is harmless.
	rep, err = im.Run(ctx, up, svc)
	if err != nil || !strings.Contains(strings.Join(rep.Lines, "\n"), "already present") {
		t.Fatalf("re-run: %v %v", rep.Lines, err)
	}
}

func TestReadRootKeyFile(t *testing.T) {
	dir := t.TempDir()
	key := random(32)
	good, bad := filepath.Join(dir, "root"), filepath.Join(dir, "bad")
	os.WriteFile(good, []byte(" "+base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
	os.WriteFile(bad, []byte("not base64!\n"), 0o600)
	if got, err := bigdlkms.ReadRootKeyFile(good); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("good file: %x, %v", got, err)
	}
	if _, err := bigdlkms.ReadRootKeyFile(bad); err == nil || err.Error() != "--upstream-root-key-file must hold upstream's ROOT_KEY: standard base64" {
		t.Fatalf("bad file: %v", err)
	}
	if _, err := bigdlkms.ReadRootKeyFile(filepath.Join(dir, "missing")); err == nil || !strings.HasPrefix(err.Error(), "reading --upstream-root-key-file: open ") {
		t.Fatalf("missing file: %v", err)
	}
}
