package rootkey_test

import (
	"bytes"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/ppml-project/ppml/kms/rootkey"
	"github.com/ppml-project/ppml/store"
)

// These tests change the keyring's rows behind the keyring's back, as
// someone with write access to the database (but not the keys) could: the
// keyring must refuse or ignore the rows, never adopt a key they name.

func rawExec(t *testing.T, dsn, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		t.Fatalf("%s: %d rows, %v", query, n, err)
	}
}

// Each term's key is bound to its number: swapping two terms' rows does
// not make blobs of one term open under the other's key.
func TestSwappedTermKeysRefused(t *testing.T) {
	dsn, rootFile := newDSN(t, "sqlite"), filepath.Join(t.TempDir(), "root.key")
	kr, db := fileReplica(t, dsn, rootFile)
	if _, err := kr.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	sk, err := db.LoadKeyring(ctx)
	if err != nil || len(sk.Terms) != 2 {
		t.Fatalf("%d terms, %v", len(sk.Terms), err)
	}
	rawExec(t, dsn, `UPDATE root_terms SET by_unseal = ? WHERE term = 1`, sk.Terms[1].ByUnseal)
	rawExec(t, dsn, `UPDATE root_terms SET by_unseal = ? WHERE term = 2`, sk.Terms[0].ByUnseal)
	_, _, err = rootkey.OpenFile(ctx, openStore(t, dsn), rootFile, false)
	wantErr(t, err, "root key term 1 does not open with this unseal key", "failed authentication")
}

// A pending rekey is bound to its id: the wrapped key of an abandoned
// rekey (whose shares someone may still hold) put under the id the
// operator commits is refused, and neither set of new shares works.
func TestReplayedPendingRekeyRefused(t *testing.T) {
	dsn := newDSN(t, "sqlite")
	kr, db, old := initShamir(t, dsn)
	_, abandoned, err := kr.PrepareRekey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := db.LoadKeyring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	abandonedKey := sk.Pending.UnsealKey
	id, fresh, err := kr.PrepareRekey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PrepareRekey(ctx, store.PendingRekey{ID: id, UnsealKey: abandonedKey}); err != nil {
		t.Fatal(err)
	}
	err = kr.CommitRekey(ctx, id)
	wantErr(t, err, "the pending rekey failed its integrity check")
	r, _ := shamirReplica(t, dsn)
	_, _, err = submit(r, abandoned[0], abandoned[1], abandoned[2])
	wantErr(t, err, "join splits failure")
	_, _, err = submit(r, fresh[0], fresh[1], fresh[2])
	wantErr(t, err, "join splits failure")
	unseal(t, r, old[0], old[1], old[2])
}

// The store's wrapped unseal key is adopted only if it matches the check
// value: an old copy of it put back after a rekey (a rollback) is ignored,
// so this replica never writes a term that the new shares cannot open.
func TestRolledBackUnsealKeyIgnored(t *testing.T) {
	dsn := newDSN(t, "sqlite")
	kr, db, old := initShamir(t, dsn)
	replica, _ := shamirReplica(t, dsn)
	unseal(t, replica, old[0], old[1], old[2])
	sk, err := db.LoadKeyring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldUnsealKey := sk.UnsealKey
	id, fresh, err := kr.PrepareRekey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.CommitRekey(ctx, id); err != nil {
		t.Fatal(err)
	}
	rawExec(t, dsn, `UPDATE meta SET value = ? WHERE name = 'root_unseal_key'`, oldUnsealKey)
	if err := replica.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	// The replica still holds the old unseal key, which the store no
	// longer accepts: it cannot add a term.
	_, err = replica.Rotate(ctx)
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("rotate with a rolled-back unseal key: %v, want a conflict", err)
	}
	r, _ := shamirReplica(t, dsn)
	unseal(t, r, fresh[0], fresh[1], fresh[2])
	if r.Term() != 1 {
		t.Fatalf("term %d, want 1", r.Term())
	}
}

// A wrapped unseal key under a term the store does not have is ignored (no
// panic), and the keyring keeps working.
func TestUnsealKeyUnderUnknownTermIgnored(t *testing.T) {
	dsn, rootFile := newDSN(t, "sqlite"), filepath.Join(t.TempDir(), "root.key")
	kr, _ := fileReplica(t, dsn, rootFile)
	rawExec(t, dsn, `UPDATE meta SET value = ? WHERE name = 'root_key_check'`, bytes.Repeat([]byte{1}, 60))
	rawExec(t, dsn, `UPDATE meta SET value = ? WHERE name = 'root_unseal_key'`, store.WithTerm(99, bytes.Repeat([]byte{2}, 60)))
	if err := kr.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	wantUnwrap(t, kr, wrap(t, kr, "x", "aad"), "aad", "x")
}
