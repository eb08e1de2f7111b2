package kms_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ppml-project/ppml/kms"
	"github.com/ppml-project/ppml/kms/rootkey"
	"github.com/ppml-project/ppml/server/servertest"
	"github.com/ppml-project/ppml/store"
	"github.com/ppml-project/ppml/store/sqlstore"
)

type acked struct {
	keyID string
	ct    []byte
}

func openStore(t *testing.T, kind string) (dsn string) {
	if kind == "postgres" {
		return servertest.NewPostgresDB(t)
	}
	return filepath.Join(t.TempDir(), "ppml.db")
}

// replica is one KMS core on the shared store, as a `ppml serve` replica has.
func replica(t *testing.T, dsn, rootFile string) (*kms.Service, *rootkey.Keyring, store.Store) {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kr, _, err := rootkey.OpenFile(context.Background(), db, rootFile, true)
	if err != nil {
		t.Fatal(err)
	}
	return kms.New(kms.Config{Store: db, Root: kr}), kr, db
}

func checkAll(t *testing.T, svc *kms.Service, c kms.Caller, keys []acked, where string) {
	t.Helper()
	for _, k := range keys {
		pt, err := svc.Decrypt(context.Background(), c, k.keyID, k.ct, nil)
		if err != nil || string(pt) != "acknowledged" {
			t.Fatalf("%s: key %s: %q %v", where, k.keyID, pt, err)
		}
	}
}

// Regression (issue 12): 8 goroutines create keys while another rotates the
// root key 300 times. Before terms, a key wrapped before a rotation and
// stored after its re-wrap was orphaned and every later rotation failed.
func TestKeysCreatedDuringRootRotationsStayUsable(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			ctx := context.Background()
			dsn, rootFile := openStore(t, st), filepath.Join(t.TempDir(), "root.key")
			svc, kr, _ := replica(t, dsn, rootFile)
			appID, _, err := svc.Enroll(ctx, kms.Caller{})
			if err != nil {
				t.Fatal(err)
			}
			c := kms.Caller{ID: appID}
			var (
				mu   sync.Mutex
				keys []acked
				wg   sync.WaitGroup
				stop = make(chan struct{})
			)
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						ki, err := svc.CreateKey(ctx, c, kms.CreateKeyRequest{Spec: "EH_AES_GCM_256"})
						if err != nil {
							t.Errorf("CreateKey during rotations: %v", err)
							return
						}
						ct, err := svc.Encrypt(ctx, c, ki.ID, []byte("acknowledged"), nil)
						if err != nil {
							t.Errorf("Encrypt during rotations: %v", err)
							return
						}
						mu.Lock()
						keys = append(keys, acked{ki.ID, ct})
						mu.Unlock()
					}
				}()
			}
			for i := 0; i < 300; i++ {
				if _, err := kr.Rotate(ctx); err != nil {
					t.Errorf("rotation %d: %v", i+1, err)
					break
				}
			}
			close(stop)
			wg.Wait()
			if t.Failed() {
				return
			}
			for i := 0; i < 3; i++ {
				if _, err := kr.Rotate(ctx); err != nil {
					t.Fatalf("rotation after the load: %v", err)
				}
			}
			if kr.Term() != 304 {
				t.Fatalf("term %d after 303 rotations, want 304", kr.Term())
			}
			t.Logf("%d keys created during 300 rotations", len(keys))
			checkAll(t, svc, c, keys, "same process")
			// A fresh process (no cache, keyring read from the store).
			svc2, kr2, _ := replica(t, dsn, rootFile)
			checkAll(t, svc2, c, keys, "restarted")
			// The re-wrap job moves every row to the current term; all still decrypt.
			p, err := kr2.Rewrap(ctx, nil)
			if err != nil || !p.Done || p.Rewrapped == 0 {
				t.Fatalf("rewrap: %+v %v", p, err)
			}
			if p, err = kr2.Rewrap(ctx, nil); err != nil || p.Rewrapped != 0 {
				t.Fatalf("second rewrap moved %d rows (%v), want 0", p.Rewrapped, err)
			}
			svc3, _, _ := replica(t, dsn, rootFile)
			checkAll(t, svc3, c, keys, "after rewrap")
		})
	}
}

// Regression (issue 12): two replicas on one store; replica 1 rotates and
// replica 2, which still holds the old term, wraps afterwards. Every key is
// usable on both and after a restart.
func TestSecondReplicaWrapsAfterFirstRotated(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			ctx := context.Background()
			dsn, rootFile := openStore(t, st), filepath.Join(t.TempDir(), "root.key")
			svc1, kr1, _ := replica(t, dsn, rootFile)
			svc2, kr2, _ := replica(t, dsn, rootFile)
			appID, _, err := svc1.Enroll(ctx, kms.Caller{})
			if err != nil {
				t.Fatal(err)
			}
			c := kms.Caller{ID: appID}
			var keys []acked
			create := func(svc *kms.Service, who string) {
				ki, err := svc.CreateKey(ctx, c, kms.CreateKeyRequest{Spec: "EH_AES_GCM_256"})
				if err != nil {
					t.Fatalf("%s CreateKey: %v", who, err)
				}
				ct, err := svc.Encrypt(ctx, c, ki.ID, []byte("acknowledged"), nil)
				if err != nil {
					t.Fatalf("%s Encrypt: %v", who, err)
				}
				keys = append(keys, acked{ki.ID, ct})
			}
			create(svc2, "replica 2")
			for i := 0; i < 3; i++ {
				if _, err := kr1.Rotate(ctx); err != nil {
					t.Fatal(err)
				}
				if kr2.Term() != i+1 {
					t.Fatalf("replica 2 learnt the rotation before wrapping (term %d): the test does not exercise the stale replica", kr2.Term())
				}
				create(svc2, fmt.Sprintf("replica 2 after rotation %d", i+1))
				if kr2.Term() != i+2 {
					t.Fatalf("replica 2 wrapped under term %d, the store's is %d", kr2.Term(), i+2)
				}
				// An app enrolled by the stale side too.
				if _, _, err := svc2.Enroll(ctx, kms.Caller{}); err != nil {
					t.Fatal(err)
				}
			}
			// Replica 2 rotates while replica 1 is the stale one.
			if _, err := kr2.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
			create(svc1, "replica 1 after replica 2 rotated")
			checkAll(t, svc1, c, keys, "replica 1")
			checkAll(t, svc2, c, keys, "replica 2")
			svc3, _, _ := replica(t, dsn, rootFile)
			checkAll(t, svc3, c, keys, "restarted")
		})
	}
}
