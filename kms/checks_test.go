package kms_test

// Tests of the key service's own checks on a real SQLite store (they kill
// the gremlins survivors of this package; docs/testing.md).

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ppml-project/ppml/audit"
	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/internal/limit"
	"github.com/ppml-project/ppml/kms"
	"github.com/ppml-project/ppml/kms/rootkey"
	"github.com/ppml-project/ppml/store/sqlstore"
)

type kmsFixture struct {
	svc    *kms.Service
	raw    *sql.DB // the same SQLite file, for edits made behind the service's back
	offset atomic.Int64
	owner  kms.Caller
	db     *sqlstore.DB
	kr     *rootkey.Keyring
}

func newKMS(t *testing.T, edit func(*kms.Config)) *kmsFixture {
	t.Helper()
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "ppml.db")
	db, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kr, _, err := rootkey.OpenFile(ctx, db, filepath.Join(t.TempDir(), "root.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	f := &kmsFixture{owner: kms.Caller{ID: "owner", API: "test"}, db: db, kr: kr}
	base := time.Now()
	cfg := kms.Config{Store: db, Root: kr, Now: func() time.Time { return base.Add(time.Duration(f.offset.Load())) }}
	if edit != nil {
		edit(&cfg)
	}
	f.svc = kms.New(cfg)
	if f.raw, err = sql.Open("sqlite", dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.raw.Close() })
	return f
}

func (f *kmsFixture) aesKey(t *testing.T) kms.KeyInfo {
	t.Helper()
	k, err := f.svc.CreateKey(context.Background(), f.owner, kms.CreateKeyRequest{Spec: "EH_AES_GCM_256"})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if fault.CodeOf(err) != code {
		t.Errorf("%s: %v, want %s", what, err, code)
	}
}

// ciphertext = version (1) | key id (16) | key version (4) | nonce (12) | sealed | tag (16)
func TestCiphertextChecks(t *testing.T) {
	f := newKMS(t, nil)
	ctx := context.Background()
	k := f.aesKey(t)
	ct, err := f.svc.Encrypt(ctx, f.owner, k.ID, []byte("secret"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := f.svc.Decrypt(ctx, f.owner, k.ID, ct, []byte("aad")); err != nil || string(pt) != "secret" {
		t.Fatalf("round trip: %q %v", pt, err)
	}
	_, err = f.svc.Decrypt(ctx, f.owner, k.ID, ct[:5], []byte("aad"))
	wantCode(t, "5 bytes with the version byte", err, "invalid_ciphertext")
	_, err = f.svc.Decrypt(ctx, f.owner, k.ID, ct[:1+16+4+12+16], []byte("aad"))
	wantCode(t, "header, nonce and tag only", err, "decrypt_failed")
	for _, v := range []uint32{0, 2} {
		bad := append([]byte{}, ct...)
		binary.BigEndian.PutUint32(bad[17:21], v)
		_, err = f.svc.Decrypt(ctx, f.owner, k.ID, bad, []byte("aad"))
		wantCode(t, fmt.Sprintf("key version %d", v), err, "invalid_ciphertext")
		if err == nil || !strings.Contains(err.Error(), "which does not exist") {
			t.Errorf("key version %d: %v", v, err)
		}
	}
	_, err = f.svc.Decrypt(ctx, f.owner, k.ID, ct, []byte("other aad"))
	wantCode(t, "other aad", err, "decrypt_failed")
}

func TestPlaintextAndDataKeyLengths(t *testing.T) {
	f := newKMS(t, nil)
	ctx := context.Background()
	k := f.aesKey(t)
	for _, n := range []int{1, kms.MaxPlaintext} {
		if _, err := f.svc.Encrypt(ctx, f.owner, k.ID, bytes.Repeat([]byte{1}, n), nil); err != nil {
			t.Errorf("Encrypt %d bytes: %v", n, err)
		}
	}
	for _, n := range []int{0, kms.MaxPlaintext + 1} {
		_, err := f.svc.Encrypt(ctx, f.owner, k.ID, bytes.Repeat([]byte{1}, n), nil)
		wantCode(t, "Encrypt", err, "invalid_plaintext")
	}
	for _, n := range []int{1, kms.MaxDataKeyLen} {
		pt, ct, err := f.svc.GenerateDataKey(ctx, f.owner, k.ID, n, []byte("a"), true)
		if err != nil || len(pt) != n {
			t.Fatalf("GenerateDataKey %d: %d bytes, %v", n, len(pt), err)
		}
		back, err := f.svc.Decrypt(ctx, f.owner, k.ID, ct, []byte("a"))
		if err != nil || !bytes.Equal(back, pt) {
			t.Fatalf("data key of %d bytes does not decrypt to itself: %v", n, err)
		}
		pt, ct, err = f.svc.GenerateDataKey(ctx, f.owner, k.ID, n, nil, false)
		if err != nil || pt != nil || len(ct) != n+1+16+4+12+16 {
			t.Fatalf("GenerateDataKeyWithoutPlaintext %d: %v %d %v", n, pt, len(ct), err)
		}
	}
	for _, n := range []int{0, -1, kms.MaxDataKeyLen + 1} {
		_, _, err := f.svc.GenerateDataKey(ctx, f.owner, k.ID, n, nil, true)
		wantCode(t, "GenerateDataKey", err, "invalid_keylen")
	}
}

func TestCreateKeyDefaultsAndBinding(t *testing.T) {
	f := newKMS(t, nil)
	ctx := context.Background()
	for spec, usage := range map[string]string{"EH_AES_GCM_128": kms.UsageEncryptDecrypt, "EH_EC_P256": kms.UsageSignVerify} {
		k, err := f.svc.CreateKey(ctx, f.owner, kms.CreateKeyRequest{Spec: spec})
		if err != nil || k.Usage != usage {
			t.Errorf("%s: usage %q, want %q (%v)", spec, k.Usage, usage, err)
		}
	}
	_, err := f.svc.CreateKey(ctx, f.owner, kms.CreateKeyRequest{Spec: "EH_AES_GCM_256", Decrypters: []string{"someone"}})
	wantCode(t, "decrypters without a release policy", err, "decrypters_without_policy")
}

// Another app's key is reported exactly as a missing one.
func TestOtherOwnersKeyNotFound(t *testing.T) {
	f := newKMS(t, nil)
	ctx := context.Background()
	k := f.aesKey(t)
	ct, err := f.svc.Encrypt(ctx, f.owner, k.ID, []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	other := kms.Caller{ID: "other", API: "test"}
	_, err = f.svc.Encrypt(ctx, other, k.ID, []byte("x"), nil)
	wantCode(t, "Encrypt with another app's key", err, "key_not_found")
	_, err = f.svc.Decrypt(ctx, other, k.ID, ct, nil)
	wantCode(t, "Decrypt with another app's key", err, "key_not_found")
	_, err = f.svc.DescribeKey(ctx, other, k.ID)
	wantCode(t, "DescribeKey of another app's key", err, "key_not_found")
	_, err = f.svc.Encrypt(ctx, f.owner, "00000000-0000-0000-0000-000000000000", []byte("x"), nil)
	wantCode(t, "Encrypt with an unknown key", err, "key_not_found")
	if _, err := f.svc.DescribeKey(ctx, f.owner, k.ID); err != nil {
		t.Fatal(err)
	}
}

// A key row edited in the database is refused, and a kept row (key cache)
// hides such an edit for at most keyCacheTTL (1 s).
func TestEditedKeyRowRefused(t *testing.T) {
	f := newKMS(t, nil)
	ctx := context.Background()
	k := f.aesKey(t)
	kept := kms.WithKeyGeneration(ctx, 42)
	if _, err := f.svc.Encrypt(kept, f.owner, k.ID, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.raw.Exec(`UPDATE keys SET name = 'edited' WHERE key_id = ?`, k.ID); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Encrypt(ctx, f.owner, k.ID, []byte("x"), nil)
	wantCode(t, "edited row, no kept row", err, "key_integrity")
	_, err = f.svc.DescribeKey(ctx, f.owner, k.ID)
	wantCode(t, "DescribeKey of an edited row", err, "key_integrity")
	f.offset.Store(int64(time.Second - time.Millisecond))
	if _, err := f.svc.Encrypt(kept, f.owner, k.ID, []byte("x"), nil); err != nil {
		t.Fatalf("row kept at the same generation, within its TTL: %v", err)
	}
	f.offset.Store(int64(time.Second))
	_, err = f.svc.Encrypt(kept, f.owner, k.ID, []byte("x"), nil)
	wantCode(t, "row kept at the same generation, TTL reached", err, "key_integrity")
}

// A key due for deletion is gone for its owner even before the sweeper runs.
func TestDueKeyNotFound(t *testing.T) {
	f := newKMS(t, nil)
	ctx := context.Background()
	k := f.aesKey(t)
	if _, err := f.svc.ScheduleDeletion(ctx, f.owner, k.ID, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	f.offset.Store(int64(25 * time.Hour))
	_, err := f.svc.DescribeKey(ctx, f.owner, k.ID)
	wantCode(t, "DescribeKey of a key due for deletion", err, "key_not_found")
}

// RSA generation waits for an RSA slot; other specs do not.
func TestOnlyRSAGenerationIsLimited(t *testing.T) {
	f := newKMS(t, func(c *kms.Config) {
		c.Limits.RSA = limit.Config{Global: 1, PerCaller: 1, Wait: 100 * time.Millisecond}
	})
	ctx := context.Background()
	release := f.svc.HoldRSASlots("holder")
	defer release()
	for _, spec := range []string{"EH_AES_GCM_256", "EH_EC_P256"} {
		if _, err := f.svc.CreateKey(ctx, f.owner, kms.CreateKeyRequest{Spec: spec}); err != nil {
			t.Errorf("%s with every RSA slot taken: %v", spec, err)
		}
	}
	if _, err := f.svc.CreateKey(ctx, f.owner, kms.CreateKeyRequest{Spec: "EH_RSA_2048"}); err == nil {
		t.Fatal("RSA key made with every RSA slot taken")
	}
	release()
	if _, err := f.svc.CreateKey(ctx, f.owner, kms.CreateKeyRequest{Spec: "EH_RSA_2048"}); err != nil {
		t.Fatalf("RSA after the slots are free: %v", err)
	}
}

// The first start after the upgrade that brought row MACs says how many key
// rows it authenticated; any other start says nothing.
func TestKeyRowBackfillLogged(t *testing.T) {
	logs := &strings.Builder{}
	f := newKMS(t, func(c *kms.Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	ctx := context.Background()
	k := f.aesKey(t)
	if strings.Contains(logs.String(), "row integrity") {
		t.Fatalf("fresh store:\n%s", logs)
	}
	// As a database from before row MACs: no MAC, no backfill marker.
	if _, err := f.raw.Exec(`UPDATE keys SET mac = NULL`); err != nil {
		t.Fatal(err)
	}
	if _, err := f.raw.Exec(`DELETE FROM meta WHERE name = 'row-mac-backfilled/v1/keys'`); err != nil {
		t.Fatal(err)
	}
	upgraded := &strings.Builder{}
	svc := kms.New(kms.Config{Store: f.db, Root: f.kr, Logger: slog.New(slog.NewTextHandler(upgraded, nil))})
	if _, err := svc.DescribeKey(ctx, f.owner, k.ID); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(upgraded.String(), "row integrity: authenticated key rows written before row MACs existed"); n != 1 || !strings.Contains(upgraded.String(), "rows=1") {
		t.Fatalf("upgrade start:\n%s", upgraded)
	}
}

// A row without a MAC (read before the upgrade backfill gave it one) is
// checked against the row now stored only when they are the same row: one
// that has changed since is refused, not vouched for by the new row's MAC.
func TestRowWithoutMACMustMatchTheStoredRow(t *testing.T) {
	f := newKMS(t, nil)
	ctx := context.Background()
	k := f.aesKey(t)
	row, err := f.db.GetKey(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	same := row
	same.MAC = nil
	if err := f.svc.CheckKeyRow(ctx, same); err != nil {
		t.Fatalf("the stored row without its MAC: %v", err)
	}
	stale := same
	stale.State = "disabled"
	wantCode(t, "a row without MAC that differs from the stored one", f.svc.CheckKeyRow(ctx, stale), "key_integrity")
	gone := same
	gone.ID = "00000000-0000-0000-0000-000000000000"
	wantCode(t, "a row without MAC that is no longer stored", f.svc.CheckKeyRow(ctx, gone), "key_integrity")
}

// Asymmetric keys are made with material: their public key can be read.
func TestAsymmetricKeysHaveMaterial(t *testing.T) {
	f := newKMS(t, nil)
	ctx := context.Background()
	for _, spec := range []string{"EH_RSA_2048", "EH_EC_P256"} {
		k, err := f.svc.CreateKey(ctx, f.owner, kms.CreateKeyRequest{Spec: spec})
		if err != nil {
			t.Fatal(err)
		}
		pemText, err := f.svc.GetPublicKey(ctx, f.owner, k.ID)
		if err != nil || !strings.HasPrefix(pemText, "-----BEGIN PUBLIC KEY-----") {
			t.Errorf("%s: public key %q, %v", spec, pemText, err)
		}
	}
}

// Deletion windows are at least a day; a disabled key is not rotated; the
// destruction of due keys is audited, and a lost audit record is reported.
func TestKeyLifecycleChecks(t *testing.T) {
	f := newKMS(t, nil)
	ctx := context.Background()
	k := f.aesKey(t)
	_, err := f.svc.ScheduleDeletion(ctx, f.owner, k.ID, 24*time.Hour-time.Second)
	wantCode(t, "a deletion window under a day", err, "invalid_window")
	if err := f.svc.SetKeyEnabled(ctx, f.owner, k.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.RotateKey(ctx, f.owner, k.ID); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Fatalf("RotateKey of a disabled key: %v", err)
	}

	g := newKMS(t, func(c *kms.Config) { c.Audit = audit.New(failingWriter{}) })
	gk, _ := g.svc.CreateKey(ctx, g.owner, kms.CreateKeyRequest{Spec: "EH_AES_GCM_256"}) // acknowledged or not, it is stored
	if gk.ID == "" {
		ki, err := g.db.ListKeys(ctx, g.owner.ID)
		if err != nil || len(ki) != 1 {
			t.Fatalf("keys of the owner: %v %v", ki, err)
		}
		gk.ID = ki[0].ID
	}
	if _, err := g.svc.ScheduleDeletion(ctx, g.owner, gk.ID, 24*time.Hour); fault.CodeOf(err) != "audit_unavailable" {
		t.Fatalf("ScheduleDeletion without audit: %v", err)
	}
	g.offset.Store(int64(25 * time.Hour))
	ids, err := g.svc.DestroyDueKeys(ctx)
	if len(ids) != 1 || fault.CodeOf(err) != "audit_unavailable" {
		t.Fatalf("DestroyDueKeys without audit: %v %v", ids, err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }
