package secrets_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/kms"
	"github.com/ppml-project/ppml/kms/rootkey"
	"github.com/ppml-project/ppml/kms/secrets"
	"github.com/ppml-project/ppml/server/servertest"
	"github.com/ppml-project/ppml/store/sqlstore"
)

// TestConcurrentVersionsAcrossRootRotation: two replicas on one store put
// versions of the same secret concurrently while one rotates the root key.
// Every acknowledged version has its own number, and every value reads back
// on both replicas (a value wrapped under a stale term is wrapped again,
// never committed).
func TestConcurrentVersionsAcrossRootRotation(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			ctx := context.Background()
			dsn := filepath.Join(t.TempDir(), "ppml.db")
			if st == "postgres" {
				dsn = servertest.NewPostgresDB(t)
			}
			rootFile := filepath.Join(t.TempDir(), "root.key")
			open := func() (*secrets.Service, *rootkey.Keyring) {
				db, err := sqlstore.Open(ctx, dsn)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				kr, _, err := rootkey.OpenFile(ctx, db, rootFile, true)
				if err != nil {
					t.Fatal(err)
				}
				return secrets.New(secrets.Config{Store: db, Root: kr, Keys: kms.New(kms.Config{Store: db, Root: kr})}), kr
			}
			a, kr := open()
			b, _ := open()
			c := kms.Caller{ID: "app-1", API: "test"}
			if err := a.Create(ctx, c, secrets.CreateRequest{Name: "pw", Data: "v1"}); err != nil {
				t.Fatal(err)
			}
			var (
				mu   sync.Mutex
				seen = map[int]string{1: "v1"}
				wg   sync.WaitGroup
			)
			for g := range 4 {
				svc := []*secrets.Service{a, b}[g%2]
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 10 {
						data := fmt.Sprintf("g%d-%d", g, i)
						v, err := svc.PutValue(ctx, c, "pw", data)
						if err != nil {
							t.Errorf("PutValue: %v", err)
							return
						}
						mu.Lock()
						if prev, dup := seen[v]; dup {
							t.Errorf("version %d acknowledged twice (%s, %s)", v, prev, data)
						}
						seen[v] = data
						mu.Unlock()
					}
				}()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 5 {
					if _, err := kr.Rotate(ctx); err != nil {
						t.Errorf("rotate: %v", err)
						return
					}
				}
			}()
			wg.Wait()
			if len(seen) != 41 {
				t.Fatalf("%d versions acknowledged, want 41", len(seen))
			}
			for v, data := range seen {
				for _, svc := range []*secrets.Service{a, b} {
					got, err := svc.Value(ctx, c, "pw", v)
					if err != nil || got.Data != data {
						t.Fatalf("version %d: %q %v, want %q", v, got.Data, err, data)
					}
				}
			}
			// Another app sees nothing of it.
			if _, err := a.Value(ctx, kms.Caller{ID: "app-2"}, "pw", 0); err == nil {
				t.Fatal("another app read the secret")
			}
		})
	}
}

// A secret manager whose database is gone answers the retryable
// store_unavailable (HTTP 503), as the key service does, not internal.
func TestDatabaseLossIsRetryable(t *testing.T) {
	ctx := context.Background()
	pg := servertest.StartPostgres(t)
	db, err := sqlstore.Open(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kr, _, err := rootkey.OpenFile(ctx, db, filepath.Join(t.TempDir(), "root.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	svc := secrets.New(secrets.Config{Store: db, Root: kr, Keys: kms.New(kms.Config{Store: db, Root: kr})})
	c := kms.Caller{ID: "app-1", API: "test"}
	if err := svc.Create(ctx, c, secrets.CreateRequest{Name: "pw", Data: "v1"}); err != nil {
		t.Fatal(err)
	}
	pg.Stop()
	for what, call := range map[string]func() error{
		"read":   func() error { _, err := svc.Value(ctx, c, "pw", 0); return err },
		"create": func() error { return svc.Create(ctx, c, secrets.CreateRequest{Name: "pw2", Data: "v"}) },
	} {
		var fe *fault.Error
		if err := call(); !errors.As(err, &fe) || fe.Kind != fault.Unavailable || fe.Code != "store_unavailable" {
			t.Errorf("%s without database: %v, want store_unavailable", what, err)
		}
	}
}
