package rootkey_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/ppml-project/ppml/internal/shamir"
	"github.com/ppml-project/ppml/kms/rootkey"
	"github.com/ppml-project/ppml/store"
	"github.com/ppml-project/ppml/store/sqlstore"
)

// interleaved is a real store that, before some of its keyring calls, runs
// a step of another replica (on that replica's own connection): the races
// the keyring's retry loops are for, made deterministic. Each hook runs
// before the numbered call (1 = the first call after it was set).
type interleaved struct {
	*sqlstore.DB
	loads, inits, commits, adds, prepares int
	beforeLoad, beforeInit, beforeCommit  map[int]func()
	beforeAdd, beforePrepare              map[int]func()
}

func (s *interleaved) LoadKeyring(ctx context.Context) (store.Keyring, error) {
	s.loads++
	if f := s.beforeLoad[s.loads]; f != nil {
		f()
	}
	return s.DB.LoadKeyring(ctx)
}

func (s *interleaved) InitKeyring(ctx context.Context, check []byte, t store.RootTerm, unsealKey []byte) (bool, error) {
	s.inits++
	if f := s.beforeInit[s.inits]; f != nil {
		f()
	}
	return s.DB.InitKeyring(ctx, check, t, unsealKey)
}

func (s *interleaved) CommitRekey(ctx context.Context, id string, oldCheck, newCheck []byte, current int, byUnseal map[int][]byte, unsealKey []byte) (bool, error) {
	s.commits++
	if f := s.beforeCommit[s.commits]; f != nil {
		f()
	}
	return s.DB.CommitRekey(ctx, id, oldCheck, newCheck, current, byUnseal, unsealKey)
}

func (s *interleaved) AddTerm(ctx context.Context, t store.RootTerm, check, unsealKey []byte) error {
	s.adds++
	if f := s.beforeAdd[s.adds]; f != nil {
		f()
	}
	return s.DB.AddTerm(ctx, t, check, unsealKey)
}

func (s *interleaved) PrepareRekey(ctx context.Context, p store.PendingRekey) error {
	s.prepares++
	if f := s.beforePrepare[s.prepares]; f != nil {
		f()
	}
	return s.DB.PrepareRekey(ctx, p)
}

// reset makes the next call of each kind number 1 and drops the hooks.
func (s *interleaved) reset() {
	s.loads, s.inits, s.commits, s.adds, s.prepares = 0, 0, 0, 0, 0
	s.beforeLoad, s.beforeInit, s.beforeCommit, s.beforeAdd, s.beforePrepare = nil, nil, nil, nil, nil
}

func rotateOn(t *testing.T, kr *rootkey.Keyring) func() {
	return func() {
		if _, err := kr.Rotate(ctx); err != nil {
			t.Errorf("rotation of the other replica: %v", err)
		}
	}
}

// Two Shamir replicas initialise at once: the one that loses the race says
// so and names the way out; the winner's shares unseal it.
func TestShamirInitRace(t *testing.T) {
	dsn := newDSN(t, "sqlite")
	winner, _ := shamirReplica(t, dsn)
	st := &interleaved{DB: openStore(t, dsn)}
	loser, err := rootkey.NewShamir(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	var shares []shamir.Share
	st.beforeInit = map[int]func(){1: func() {
		if shares, err = winner.Init(ctx); err != nil {
			t.Fatal(err)
		}
	}}
	got, err := loser.Init(ctx)
	wantIs(t, err, rootkey.ErrInitialized)
	wantErr(t, err, "another replica initialised the root key meanwhile; unseal with its shares")
	if got != nil || !loser.Sealed() || !loser.Initialized() {
		t.Fatalf("loser: %d shares, sealed %v, initialized %v", len(got), loser.Sealed(), loser.Initialized())
	}
	unseal(t, loser, shares[0], shares[1], shares[2])
	wantUnwrap(t, loser, wrap(t, winner, "x", "aad"), "aad", "x")
}

// Two file-mode replicas start on a fresh store at once with the same key
// file: the loser adopts the term 1 the winner committed.
func TestFileInitRace(t *testing.T) {
	dsn, rootFile := newDSN(t, "sqlite"), filepath.Join(t.TempDir(), "root.key")
	var first *rootkey.Keyring
	st := &interleaved{DB: openStore(t, dsn), beforeInit: map[int]func(){1: func() {
		first, _ = fileReplica(t, dsn, rootFile)
	}}}
	// The second creates the key file, the first (in its hook) reads it
	// and commits the keyring first.
	second, created, err := rootkey.OpenFile(ctx, st, rootFile, true)
	if err != nil || !created {
		t.Fatalf("second replica: created %v, %v", created, err)
	}
	if st.inits != 1 || first.Term() != 1 || second.Term() != 1 {
		t.Fatalf("%d inits, terms %d %d", st.inits, first.Term(), second.Term())
	}
	wantUnwrap(t, second, wrap(t, first, "x", "aad"), "aad", "x")
	wantUnwrap(t, first, wrap(t, second, "y", "aad"), "aad", "y")
}

// A rotation on another replica while CommitRekey runs: the commit learns
// the new term and retries, and every term opens with the new shares.
func TestCommitRekeyDuringRotation(t *testing.T) {
	for _, when := range []string{"before the commit", "between reload and read"} {
		t.Run(when, func(t *testing.T) {
			dsn := newDSN(t, "sqlite")
			_, _, old := initShamir(t, dsn)
			other, _ := shamirReplica(t, dsn)
			unseal(t, other, old[0], old[1], old[2])
			st := &interleaved{DB: openStore(t, dsn)}
			kr, err := rootkey.NewShamir(ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			unseal(t, kr, old[2], old[3], old[4])
			b1 := wrap(t, kr, "one", "aad")
			id, fresh, err := kr.PrepareRekey(ctx)
			if err != nil {
				t.Fatal(err)
			}
			st.reset()
			if when == "before the commit" {
				st.beforeCommit = map[int]func(){1: rotateOn(t, other)}
			} else {
				// CommitRekey's Reload reads first (1), then the keyring (2).
				st.beforeLoad = map[int]func(){2: rotateOn(t, other)}
			}
			if err := kr.CommitRekey(ctx, id); err != nil {
				t.Fatal(err)
			}
			if st.commits < 1 || (when == "before the commit" && st.commits != 2) {
				t.Fatalf("%d store commits", st.commits)
			}
			b2 := wrap(t, other, "two", "aad")
			r, _ := shamirReplica(t, dsn)
			_, _, err = submit(r, old[0], old[1], old[2])
			wantErr(t, err, "join splits failure")
			unseal(t, r, fresh[0], fresh[1], fresh[4])
			if r.Term() != 2 {
				t.Fatalf("term %d, want 2", r.Term())
			}
			wantUnwrap(t, r, b1, "aad", "one")
			wantUnwrap(t, r, b2, "aad", "two")
		})
	}
}

// A store that keeps moving (a rotation before every commit) ends the
// commit with an error instead of a loop, and the old shares stay valid.
func TestCommitRekeyGivesUp(t *testing.T) {
	for _, when := range []string{"before the commit", "between reload and read"} {
		t.Run(when, func(t *testing.T) {
			dsn := newDSN(t, "sqlite")
			_, _, old := initShamir(t, dsn)
			other, _ := shamirReplica(t, dsn)
			unseal(t, other, old[0], old[1], old[2])
			st := &interleaved{DB: openStore(t, dsn)}
			kr, err := rootkey.NewShamir(ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			unseal(t, kr, old[2], old[3], old[4])
			id, _, err := kr.PrepareRekey(ctx)
			if err != nil {
				t.Fatal(err)
			}
			st.reset()
			st.beforeCommit, st.beforeLoad = map[int]func(){}, map[int]func(){}
			for i := 1; i <= 100; i++ {
				if when == "before the commit" {
					st.beforeCommit[i] = rotateOn(t, other)
				} else if i%2 == 0 {
					st.beforeLoad[i] = rotateOn(t, other)
				}
			}
			err = kr.CommitRekey(ctx, id)
			if when == "before the commit" {
				if !errors.Is(err, store.ErrConflict) {
					t.Fatalf("commit on a store that always moves: %v, want a conflict", err)
				}
			} else {
				wantErr(t, err, "is not loaded")
			}
			if st.commits > 10 || st.loads > 30 {
				t.Fatalf("%d commits, %d loads before giving up", st.commits, st.loads)
			}
			r, _ := shamirReplica(t, dsn)
			unseal(t, r, old[0], old[3], old[4])
		})
	}
}

// hooks returns hooks that rotate on other before calls 1..n.
func hooks(t *testing.T, other *rootkey.Keyring, n int) map[int]func() {
	m := map[int]func(){}
	for i := 1; i <= n; i++ {
		m[i] = rotateOn(t, other)
	}
	return m
}

// Rotate and PrepareRekey retry when another replica rotated meanwhile,
// and give up (with the store's error) when it keeps happening; once the
// store is quiet again they work.
func TestRotateAndPrepareRekeyOnAMovingStore(t *testing.T) {
	dsn := newDSN(t, "sqlite")
	_, _, shares := initShamir(t, dsn)
	other, _ := shamirReplica(t, dsn)
	unseal(t, other, shares[0], shares[1], shares[2])
	st := &interleaved{DB: openStore(t, dsn)}
	kr, err := rootkey.NewShamir(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	unseal(t, kr, shares[2], shares[3], shares[4])

	st.reset()
	st.beforeAdd = hooks(t, other, 1)
	if term, err := kr.Rotate(ctx); err != nil || term != 3 || st.adds != 2 {
		t.Fatalf("rotate after one rotation elsewhere: term %d, %d store calls, %v", term, st.adds, err)
	}
	st.reset()
	st.beforeAdd = hooks(t, other, 50)
	_, err = kr.Rotate(ctx)
	if !errors.Is(err, store.ErrConflict) || st.adds > 20 {
		t.Fatalf("rotate on a store that keeps moving: %v after %d store calls; want a conflict", err, st.adds)
	}

	st.reset()
	st.beforePrepare = hooks(t, other, 1)
	if _, _, err := kr.PrepareRekey(ctx); err != nil || st.prepares != 2 {
		t.Fatalf("prepare after one rotation elsewhere: %d store calls, %v", st.prepares, err)
	}
	st.reset()
	st.beforePrepare = hooks(t, other, 50)
	_, _, err = kr.PrepareRekey(ctx)
	if !errors.Is(err, store.ErrStaleTerm) || st.prepares > 20 {
		t.Fatalf("prepare on a store that keeps moving: %v after %d store calls; want a stale term", err, st.prepares)
	}
	st.reset()
	id, fresh, err := kr.PrepareRekey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.CommitRekey(ctx, id); err != nil {
		t.Fatal(err)
	}
	r, _ := shamirReplica(t, dsn)
	unseal(t, r, fresh[0], fresh[1], fresh[2])
	if r.Term() != other.Term() || r.Term() < 10 {
		t.Fatalf("term %d after restart, other replica at %d", r.Term(), other.Term())
	}
}

// Seal gives up when put keeps reporting a stale term (a broken store)
// instead of wrapping forever.
func TestSealGivesUp(t *testing.T) {
	dsn, rootFile := newDSN(t, "sqlite"), filepath.Join(t.TempDir(), "root.key")
	kr, _ := fileReplica(t, dsn, rootFile)
	calls := 0
	errTooMany := errors.New("put called too often")
	err := kr.Seal(ctx, []byte("x"), nil, func([]byte) error {
		calls++
		if calls > 1000 {
			return errTooMany
		}
		return fmt.Errorf("refused: %w", store.ErrStaleTerm)
	})
	if !errors.Is(err, store.ErrStaleTerm) || calls < 2 {
		t.Fatalf("seal with a put that always refuses: %v after %d calls", err, calls)
	}
}
