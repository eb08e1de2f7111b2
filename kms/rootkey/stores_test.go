package rootkey_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/ppml-project/ppml/store/sqlstore"
)

// The tests run on both real stores. PostgreSQL comes from
// PPML_TEST_POSTGRES (scripts/test.sh, or by hand: source
// scripts/postgres.sh); unset, the test fails rather than dropping it.
//
// This is servertest.Stores/NewPostgresDB again, on purpose: servertest
// links the whole server, which imports this package, so with it every
// mutant of the mutation tester (scripts/mutation.sh) would rebuild and link
// the server; with sqlstore alone it rebuilds this package only.
func storeKinds(t *testing.T) []string {
	t.Helper()
	postgresBase(t)
	return []string{"sqlite", "postgres"}
}

func postgresBase(t *testing.T) string {
	t.Helper()
	base := os.Getenv("PPML_TEST_POSTGRES")
	if base == "" {
		t.Fatal("PPML_TEST_POSTGRES is unset: run the tests with scripts/test.sh, which starts PostgreSQL " +
			"(by hand: source scripts/postgres.sh)")
	}
	return base
}

// newDSN returns a fresh, empty store of kind: a SQLite file in the test's
// temporary directory or a new PostgreSQL database (dropped at the end).
func newDSN(t *testing.T, kind string) string {
	t.Helper()
	if kind != "postgres" {
		return filepath.Join(t.TempDir(), "ppml.db")
	}
	base := postgresBase(t)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "ppml_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// openStore opens one connection pool on dsn, as one `ppml serve` replica
// (or one restart of it) has.
func openStore(t *testing.T, dsn string) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
