package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/ppml-project/ppml/server/servertest"
	"github.com/ppml-project/ppml/store/sqlstore"
)

func openDSN(t *testing.T, kind string) (dsn, driver string) {
	if kind == "postgres" {
		return servertest.NewPostgresDB(t), "pgx"
	}
	return filepath.Join(t.TempDir(), "ppml.db"), "sqlite"
}

func raw(t *testing.T, driver, dsn string, stmts ...string) {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// A database from before replay_records: its records (table replay, key
// app_id, nonce, ts) still refuse their requests after the upgrade, and the
// old table is gone.
func TestReplayRecordsSurviveTheUpgrade(t *testing.T) {
	for _, kind := range servertest.Stores(t) {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			dsn, driver := openDSN(t, kind)
			db, err := sqlstore.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
			now := time.Now()
			raw(t, driver, dsn, `DROP TABLE replay_records`,
				`CREATE TABLE replay (app_id TEXT NOT NULL, nonce TEXT NOT NULL, ts TEXT NOT NULL, seen_at BIGINT NOT NULL, PRIMARY KEY (app_id, nonce, ts))`,
				`CREATE INDEX replay_seen ON replay (seen_at)`,
				fmt.Sprintf(`INSERT INTO replay VALUES ('app', 'sha256:aa', '1700000000000', %d), ('app', 'attest-nonce:bb', '', %d)`,
					now.UnixMilli(), now.Add(time.Minute).UnixMilli()))
			db, err = sqlstore.Open(ctx, dsn)
			if err != nil {
				t.Fatalf("opening a database with the older replay table: %v", err)
			}
			defer db.Close()
			if fresh, _, err := db.RecordRequest(ctx, "app", "sha256:aa", "1700000000000", now, now.Add(-20*time.Minute)); err != nil || fresh {
				t.Fatalf("request recorded before the upgrade: fresh %v, %v", fresh, err)
			}
			if fresh, err := db.SpendNonce(ctx, "bb", "app", now.Add(time.Minute)); err != nil || fresh {
				t.Fatalf("nonce spent before the upgrade: fresh %v, %v", fresh, err)
			}
			if fresh, _, err := db.RecordRequest(ctx, "app", "sha256:cc", "1700000000000", now, now.Add(-20*time.Minute)); err != nil || !fresh {
				t.Fatalf("new request: fresh %v, %v", fresh, err)
			}
			h, _ := sql.Open(driver, dsn)
			defer h.Close()
			if _, err := h.Exec(`SELECT 1 FROM replay`); err == nil {
				t.Fatal("the older replay table is still there")
			}
		})
	}
}

// Concurrent records share group commits: of copies of one request sent at
// once exactly one is fresh (within a batch or across batches), every
// distinct request is fresh; a record older than its retention is
// refreshed (fresh again), a spent nonce never is.
func TestReplayGroupCommitSemantics(t *testing.T) {
	for _, kind := range servertest.Stores(t) {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			dsn, _ := openDSN(t, kind)
			db, err := sqlstore.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			now := time.Now()
			for round := 0; round < 5; round++ {
				var mu sync.Mutex
				copiesFresh, distinctFresh := 0, 0
				var wg sync.WaitGroup
				for i := 0; i < 64; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						nonce, ts := fmt.Sprintf("sha256:copy%d", round), "1700000000000"
						if i%2 == 1 {
							nonce, ts = fmt.Sprintf("sha256:d%d-%d", round, i), fmt.Sprint(1700000000000+i%7)
						}
						fresh, _, err := db.RecordRequest(ctx, "app", nonce, ts, now, now.Add(-20*time.Minute))
						if err != nil {
							t.Error(err)
						}
						mu.Lock()
						defer mu.Unlock()
						if fresh && i%2 == 0 {
							copiesFresh++
						} else if fresh {
							distinctFresh++
						}
					}()
				}
				wg.Wait()
				if copiesFresh != 1 || distinctFresh != 32 {
					t.Fatalf("round %d: %d of 32 copies fresh (want 1), %d of 32 distinct fresh", round, copiesFresh, distinctFresh)
				}
			}
			rec := func(at time.Time) bool {
				t.Helper()
				fresh, _, err := db.RecordRequest(ctx, "app", "sha256:old", "1700000000000", at, at.Add(-20*time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				return fresh
			}
			if !rec(now) || rec(now.Add(19*time.Minute)) || !rec(now.Add(21*time.Minute)) || rec(now.Add(22*time.Minute)) {
				t.Fatal("want fresh, refused within the retention, refreshed after it, refused again")
			}
			exp := now.Add(5 * time.Minute)
			if fresh, err := db.SpendNonce(ctx, "n1", "app", exp); err != nil || !fresh {
				t.Fatalf("first spend: %v %v", fresh, err)
			}
			if fresh, err := db.SpendNonce(ctx, "n1", "app", exp); err != nil || fresh {
				t.Fatalf("second spend: %v %v", fresh, err)
			}
		})
	}
}
