package kms_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/ppml-project/ppml/kms"
	"github.com/ppml-project/ppml/store"
	"github.com/ppml-project/ppml/store/sqlstore"
)

// legacySeal is the blob format before root key terms: nonce || AES-GCM
// ciphertext under the root key itself.
func legacySeal(t *testing.T, key, pt, aad []byte) []byte {
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := cipher.NewGCM(block)
	nonce := make([]byte, g.NonceSize())
	rand.Read(nonce)
	return g.Seal(nonce, nonce, pt, aad)
}

// A store written before root key terms (schema 1) stays readable: its
// blobs become term 1, whose key is the old root key, and it rotates.
func TestStoreFromBeforeTermsStaysReadable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dsn := filepath.Join(dir, "ppml.db")
	rootKey := make([]byte, 32)
	rand.Read(rootKey)
	rootFile := filepath.Join(dir, "root.key")
	if err := os.WriteFile(rootFile, []byte(base64.StdEncoding.EncodeToString(rootKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	// Schema 1 as the previous release left it.
	db0, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	db0.Close()
	raw, err := sql.Open("sqlite", "file:"+dsn)
	if err != nil {
		t.Fatal(err)
	}
	appID, apiKey, keyID, owner := "3f1b7a4e-0000-4000-8000-000000000001", "legacy-api-key-0123456789abcdefgh", "3f1b7a4e-0000-4000-8000-000000000002", "3f1b7a4e-0000-4000-8000-000000000001"
	material := make([]byte, 32)
	rand.Read(material)
	now := time.Now().UnixMilli()
	for _, q := range []struct {
		query string
		args  []any
	}{
		{`DELETE FROM meta`, nil},
		{`INSERT INTO meta (name, value) VALUES ('root_key_check', ?)`, []any{legacySeal(t, rootKey, []byte("ppml root key check v1"), []byte("ppml/root-key-check/v1"))}},
		{`INSERT INTO apps (app_id, kind, secret, created_at) VALUES (?, 'ehsm', ?, ?)`, []any{appID, legacySeal(t, rootKey, []byte(apiKey), store.AppSecretAAD(appID)), now}},
		{`INSERT INTO keys (key_id, owner, name, spec, origin, usage, state, current_version, created_at) VALUES (?, ?, NULL, 'EH_AES_GCM_256', 'EH_INTERNAL_KEY', 'EH_KEYUSAGE_ENCRYPT_DECRYPT', 'Enabled', 1, ?)`, []any{keyID, owner, now}},
		{`INSERT INTO key_versions (key_id, version, material, created_at) VALUES (?, 1, ?, ?)`, []any{keyID, legacySeal(t, rootKey, material, store.KeyMaterialAAD(keyID, 1, owner, "EH_AES_GCM_256")), now}},
	} {
		if _, err := raw.Exec(q.query, q.args...); err != nil {
			t.Fatalf("%s: %v", q.query, err)
		}
	}
	raw.Close()

	svc, kr, _ := replica(t, dsn, rootFile)
	if kr.Term() != 1 {
		t.Fatalf("migrated keyring term %d, want 1", kr.Term())
	}
	if err := svc.AuthenticateApp(ctx, appID, apiKey); err != nil {
		t.Fatalf("legacy API key after migration: %v", err)
	}
	c := kms.Caller{ID: owner}
	ct, err := svc.Encrypt(ctx, c, keyID, []byte("acknowledged"), nil)
	if err != nil {
		t.Fatalf("legacy key after migration: %v", err)
	}
	if _, err := kr.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if p, err := kr.Rewrap(ctx, nil); err != nil || p.Rewrapped < 2 || p.Rewrapped != p.Scanned {
		t.Fatalf("rewrap of the legacy rows: %+v %v", p, err)
	}
	// A second start must not migrate again.
	svc2, _, _ := replica(t, dsn, rootFile)
	if err := svc2.AuthenticateApp(ctx, appID, apiKey); err != nil {
		t.Fatalf("legacy API key after restart: %v", err)
	}
	checkAll(t, svc2, c, []acked{{keyID, ct}}, "after restart")
}
