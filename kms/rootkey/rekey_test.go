package rootkey_test

import (
	"strings"
	"testing"

	"github.com/ppml-project/ppml/internal/shamir"
	"github.com/ppml-project/ppml/kms/rootkey"
	"github.com/ppml-project/ppml/store"
)

func TestRekey(t *testing.T) {
	for _, kind := range storeKinds(t) {
		t.Run(kind, func(t *testing.T) {
			dsn := newDSN(t, kind)
			kr, db, old := initShamir(t, dsn)
			blob := wrap(t, kr, "kept", "aad")
			// A replica unsealed with the old shares before the rekey.
			replica, _ := shamirReplica(t, dsn)
			unseal(t, replica, old[0], old[1], old[2])
			replicaB, _ := shamirReplica(t, dsn)
			unseal(t, replicaB, old[3], old[4], old[0])

			id, fresh, err := kr.PrepareRekey(ctx)
			if err != nil || id == "" || len(fresh) != rootkey.NumShares {
				t.Fatalf("prepare: id %q, %d shares, %v", id, len(fresh), err)
			}
			sk, err := db.LoadKeyring(ctx)
			if err != nil || sk.Pending == nil || sk.Pending.ID != id {
				t.Fatalf("pending rekey in the store: %+v %v", sk.Pending, err)
			}
			// Until the commit, the old shares unseal and the new do not.
			r, _ := shamirReplica(t, dsn)
			_, _, err = submit(r, fresh[0], fresh[1], fresh[2])
			wantErr(t, err, "do not reconstruct this KMS's root key")
			unseal(t, r, old[2], old[3], old[4])

			// A commit of an unknown id fails and changes nothing.
			err = kr.CommitRekey(ctx, "not-"+id)
			wantErr(t, err, "no pending rekey not-"+id, "the old shares are still valid")
			r, _ = shamirReplica(t, dsn)
			unseal(t, r, old[0], old[3], old[4])
			wantUnwrap(t, r, blob, "aad", "kept")

			if err := kr.CommitRekey(ctx, id); err != nil {
				t.Fatal(err)
			}
			// A lost answer can be retried.
			if err := kr.CommitRekey(ctx, id); err != nil {
				t.Fatalf("second commit of the same rekey: %v", err)
			}
			if sk, err := db.LoadKeyring(ctx); err != nil || sk.Pending != nil || sk.Current != 1 {
				t.Fatalf("after commit: pending %+v current %d %v", sk.Pending, sk.Current, err)
			}
			// After a restart: the old shares are refused, any 3 new ones unseal.
			r, _ = shamirReplica(t, dsn)
			_, _, err = submit(r, old[0], old[1], old[2])
			wantErr(t, err, "do not reconstruct this KMS's root key")
			for _, pick := range [][]shamir.Share{{fresh[0], fresh[1], fresh[2]}, {fresh[4], fresh[0], fresh[3]}} {
				r, _ := shamirReplica(t, dsn)
				unseal(t, r, pick...)
				wantUnwrap(t, r, blob, "aad", "kept")
			}
			// The keyring that committed, and the replica, still work and
			// rotate: the replica learns the new unseal key from the store
			// (a rotation under the old one would be refused), and its new
			// term opens with the new shares.
			wantUnwrap(t, kr, wrap(t, kr, "after", "aad"), "aad", "after")
			if term, err := replica.Rotate(ctx); err != nil || term != 2 {
				t.Fatalf("rotate on a replica after a rekey elsewhere: %d, %v", term, err)
			}
			b2 := wrap(t, replica, "two", "aad")
			r, _ = shamirReplica(t, dsn)
			unseal(t, r, fresh[1], fresh[2], fresh[3])
			if r.Term() != 2 {
				t.Fatalf("term %d after restart, want 2", r.Term())
			}
			wantUnwrap(t, r, b2, "aad", "two")
			wantUnwrap(t, r, blob, "aad", "kept")
			// The committing keyring learns term 2 although it was added
			// by another replica.
			wantUnwrap(t, kr, b2, "aad", "two")
			// A replica still on the old unseal key learns term 2 through
			// term 1 (the new term's key is wrapped under the new unseal
			// key and under the previous term).
			wantUnwrap(t, replicaB, b2, "aad", "two")
			if replicaB.Term() != 2 {
				t.Fatalf("replicaB term %d, want 2", replicaB.Term())
			}
			// It also learnt the new unseal key, from the copy the rotation
			// wrapped under term 2: its own rotation is accepted and opens
			// with the new shares.
			if term, err := replicaB.Rotate(ctx); err != nil || term != 3 {
				t.Fatalf("rotate on a replica that learnt the rekey from a rotation: %d, %v", term, err)
			}
			b3 := wrap(t, replicaB, "three", "aad")
			r, _ = shamirReplica(t, dsn)
			unseal(t, r, fresh[0], fresh[2], fresh[4])
			wantUnwrap(t, r, b3, "aad", "three")
		})
	}
}

// Only the last prepared rekey can be committed; the earlier one's shares
// never become valid.
func TestRekeyReplacedByAnother(t *testing.T) {
	dsn := newDSN(t, "sqlite")
	kr, _, old := initShamir(t, dsn)
	first, firstShares, err := kr.PrepareRekey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second, secondShares, err := kr.PrepareRekey(ctx)
	if err != nil || second == first {
		t.Fatalf("second prepare: %q (first %q) %v", second, first, err)
	}
	err = kr.CommitRekey(ctx, first)
	wantErr(t, err, "no pending rekey "+first)
	r, _ := shamirReplica(t, dsn)
	_, _, err = submit(r, firstShares[0], firstShares[1], firstShares[2])
	wantErr(t, err, "join splits failure")
	unseal(t, r, old[0], old[1], old[2])
	if err := kr.CommitRekey(ctx, second); err != nil {
		t.Fatal(err)
	}
	r, _ = shamirReplica(t, dsn)
	unseal(t, r, secondShares[2], secondShares[3], secondShares[4])
	// After the commit, the replaced id is still unknown.
	err = kr.CommitRekey(ctx, first)
	wantErr(t, err, "no pending rekey "+first)
}

// A rekey prepared on a replica that missed a rotation is wrapped under the
// current term, and one prepared before a rotation still commits after it.
func TestRekeyAcrossRotation(t *testing.T) {
	for _, kind := range storeKinds(t) {
		t.Run(kind, func(t *testing.T) {
			dsn := newDSN(t, kind)
			kr, db, old := initShamir(t, dsn)
			replica, _ := shamirReplica(t, dsn)
			unseal(t, replica, old[0], old[1], old[2])
			b1 := wrap(t, kr, "one", "aad")
			if _, err := kr.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
			id, fresh, err := replica.PrepareRekey(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sk, err := db.LoadKeyring(ctx)
			if err != nil || sk.Pending == nil || blobTerm(t, sk.Pending.UnsealKey) != 2 || replica.Term() != 2 {
				t.Fatalf("pending rekey of a stale replica: %+v (replica term %d) %v", sk.Pending, replica.Term(), err)
			}
			b2 := wrap(t, kr, "two", "aad")
			if _, err := kr.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
			// Prepared under term 2, committed at term 3, by the other keyring.
			if err := kr.CommitRekey(ctx, id); err != nil {
				t.Fatal(err)
			}
			b3 := wrap(t, kr, "three", "aad")
			r, _ := shamirReplica(t, dsn)
			_, _, err = submit(r, old[0], old[1], old[2])
			wantErr(t, err, "join splits failure")
			unseal(t, r, fresh[0], fresh[2], fresh[4])
			if r.Term() != 3 {
				t.Fatalf("term %d, want 3", r.Term())
			}
			for blob, want := range map[*[]byte]string{&b1: "one", &b2: "two", &b3: "three"} {
				wantUnwrap(t, r, *blob, "aad", want)
			}
		})
	}
}

// A pending rekey whose wrapped key was changed in the store is refused,
// and the old shares keep working.
func TestRekeyTamperedPending(t *testing.T) {
	dsn := newDSN(t, "sqlite")
	kr, db, old := initShamir(t, dsn)
	id, _, err := kr.PrepareRekey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := db.LoadKeyring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), sk.Pending.UnsealKey...)
	bad[len(bad)-1] ^= 1
	if err := db.PrepareRekey(ctx, store.PendingRekey{ID: id, UnsealKey: bad}); err != nil {
		t.Fatal(err)
	}
	err = kr.CommitRekey(ctx, id)
	wantErr(t, err, "the pending rekey failed its integrity check")
	// A pending key under a term the store does not have.
	if err := db.PrepareRekey(ctx, store.PendingRekey{ID: id, UnsealKey: store.WithTerm(9, bad[store.TermHeaderSize:])}); err == nil {
		t.Fatal("the store accepted a pending rekey under term 9")
	}
	r, _ := shamirReplica(t, dsn)
	unseal(t, r, old[1], old[2], old[3])
}

func TestSealedKeyring(t *testing.T) {
	dsn := newDSN(t, "sqlite")
	uninit, _ := shamirReplica(t, dsn)
	checkSealed := func(kr *rootkey.Keyring, want error) {
		t.Helper()
		if !kr.Sealed() || kr.Term() != 0 {
			t.Fatalf("sealed %v term %d", kr.Sealed(), kr.Term())
		}
		_, err := kr.Wrap([]byte("x"), nil)
		wantIs(t, err, want)
		_, err = kr.Unwrap(store.WithTerm(1, make([]byte, 40)), nil)
		wantIs(t, err, want)
		called := false
		err = kr.Seal(ctx, []byte("x"), nil, func([]byte) error { called = true; return nil })
		wantIs(t, err, want)
		if called {
			t.Fatal("Seal stored a blob while sealed")
		}
		_, err = kr.Rotate(ctx)
		wantIs(t, err, want)
		wantIs(t, kr.Reload(ctx), want)
		wantIs(t, kr.CheckCurrent(ctx), want)
		_, _, err = kr.PrepareRekey(ctx)
		wantIs(t, err, want)
		wantIs(t, kr.CommitRekey(ctx, "id"), want)
		_, err = kr.Rewrap(ctx, nil)
		wantIs(t, err, want)
	}
	checkSealed(uninit, rootkey.ErrUninitialized)
	if !strings.Contains(rootkey.ErrUninitialized.Error(), "ppml operator init") {
		t.Fatalf("ErrUninitialized does not say what to do: %v", rootkey.ErrUninitialized)
	}
	_, _, shares := initShamir(t, dsn)
	restarted, _ := shamirReplica(t, dsn)
	checkSealed(restarted, rootkey.ErrSealed)
	if !strings.Contains(rootkey.ErrSealed.Error(), "ppml operator unseal") {
		t.Fatalf("ErrSealed does not say what to do: %v", rootkey.ErrSealed)
	}
	// Two shares held: still sealed for everything.
	if _, unsealed, err := submit(restarted, shares[0], shares[1]); err != nil || unsealed {
		t.Fatalf("two shares: %v %v", unsealed, err)
	}
	checkSealed(restarted, rootkey.ErrSealed)
}
