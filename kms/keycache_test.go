package kms_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/ppml-project/ppml/kms"
	"github.com/ppml-project/ppml/kms/rootkey"
	"github.com/ppml-project/ppml/server/servertest"
	"github.com/ppml-project/ppml/store"
	"github.com/ppml-project/ppml/store/sqlstore"
)

// Every key row write advances the key generation in its transaction (the
// invalidation rule of kms/keycache.go depends on it), on both stores, and
// a database from before the generation existed gets it on open.
func TestEveryKeyWriteAdvancesTheGeneration(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			ctx := context.Background()
			dsn := openStore(t, st)
			// A database from before the generation: the table is dropped
			// after the first open, as if an older release had made it.
			first, err := sqlstore.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			first.Close()
			driver, source := "pgx", dsn
			if st == "sqlite" {
				driver = "sqlite"
			}
			raw, err := sql.Open(driver, source)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := raw.Exec(`DROP TABLE key_generation`); err != nil {
				t.Fatal(err)
			}
			raw.Close()

			db, err := sqlstore.Open(ctx, dsn)
			if err != nil {
				t.Fatalf("opening a database from before the key generation: %v", err)
			}
			t.Cleanup(func() { db.Close() })
			kr, _, err := rootkey.OpenFile(ctx, db, filepath.Join(t.TempDir(), "root.key"), true)
			if err != nil {
				t.Fatal(err)
			}
			var offset atomic.Int64
			now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
			svc := kms.New(kms.Config{Store: db, Root: kr, Now: now})
			c := kms.Caller{ID: "owner", API: "test"}

			var n int
			generation := func() int64 {
				t.Helper()
				n++
				fresh, gen, err := db.RecordRequest(ctx, "probe", fmt.Sprint(n), "0", now(), now().Add(-time.Hour))
				if err != nil || !fresh {
					t.Fatalf("reading the generation: %v %v", fresh, err)
				}
				return gen
			}
			last := generation()
			advanced := func(what string, err error) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if g := generation(); g <= last {
					t.Fatalf("%s did not advance the key generation (%d, was %d)", what, g, last)
				} else {
					last = g
				}
			}
			k, err := svc.CreateKey(ctx, c, kms.CreateKeyRequest{Spec: "EH_AES_GCM_256"})
			if err != nil {
				t.Fatal(err)
			}
			advanced("DisableKey", svc.SetKeyEnabled(ctx, c, k.ID, false))
			advanced("EnableKey", svc.SetKeyEnabled(ctx, c, k.ID, true))
			_, err = svc.RotateKey(ctx, c, k.ID)
			advanced("RotateKey", err)
			_, err = svc.ScheduleDeletion(ctx, c, k.ID, 24*time.Hour)
			advanced("ScheduleDeletion", err)
			advanced("CancelDeletion", svc.CancelDeletion(ctx, c, k.ID))
			svc.ScheduleDeletion(ctx, c, k.ID, 24*time.Hour)
			last = generation()
			offset.Store(int64(25 * time.Hour))
			ids, err := svc.DestroyDueKeys(ctx)
			if len(ids) != 1 {
				t.Fatalf("destroyed %v", ids)
			}
			advanced("DestroyDueKeys", err)

			// The row MAC backfill (upgrade) writes key rows too.
			k2, _ := svc.CreateKey(ctx, c, kms.CreateKeyRequest{Spec: "EH_AES_GCM_256"})
			raw, _ = sql.Open(driver, source)
			defer raw.Close()
			if _, err := raw.Exec(`UPDATE keys SET mac = NULL WHERE key_id = '` + k2.ID + `'`); err != nil {
				t.Fatal(err)
			}
			last = generation()
			set, err := db.BackfillKeyMACs(ctx, func(store.Key) ([]byte, error) { return []byte("mac"), nil })
			if set != 1 {
				t.Fatalf("backfill set %d", set)
			}
			advanced("BackfillKeyMACs", err)
		})
	}
}

// A kept key row serves only a request carrying the generation it was
// kept at: the kms core alone (no adapter), two replicas on one store.
func TestKeptKeyRowNeedsItsGeneration(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			ctx := context.Background()
			dsn := openStore(t, st)
			root := filepath.Join(t.TempDir(), "root.key")
			one, _, db1 := replica(t, dsn, root)
			two, _, db2 := replica(t, dsn, root)
			c := kms.Caller{ID: "owner", API: "test"}
			k, err := one.CreateKey(ctx, c, kms.CreateKeyRequest{Spec: "EH_AES_GCM_256"})
			if err != nil {
				t.Fatal(err)
			}
			var n int
			request := func(db store.Store) context.Context {
				n++
				_, gen, err := db.RecordRequest(ctx, "probe", fmt.Sprint(n), "0", time.Now(), time.Now().Add(-time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				return kms.WithKeyGeneration(ctx, gen)
			}
			if _, _, err := two.GenerateDataKey(request(db2), c, k.ID, 32, nil, false); err != nil {
				t.Fatal(err)
			}
			if err := one.SetKeyEnabled(request(db1), c, k.ID, false); err != nil {
				t.Fatal(err)
			}
			_, _, err = two.GenerateDataKey(request(db2), c, k.ID, 32, nil, false)
			if err == nil || !strings.Contains(err.Error(), "disabled") {
				t.Fatalf("key disabled on replica one, next request on replica two: %v", err)
			}
		})
	}
}
