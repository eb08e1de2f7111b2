// Package sqlstore implements store.Store on SQLite (modernc.org/sqlite, pure
// Go) and PostgreSQL (pgx) with one schema and one set of queries.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/ppml-project/ppml/store"
)

type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

// DB is a store.Store over database/sql.
type DB struct {
	db      *sql.DB
	dialect dialect
	// wmu serialises SQLite writers in process: waiting on a mutex is far
	// cheaper than SQLite's sleep-and-retry busy handler.
	wmu sync.Mutex
	// stmts holds the prepared hot statements by query text (see stmt).
	stmts sync.Map
	// replay group-commits replay records (see RecordRequest).
	replay *groupCommit
}

// stmt returns the prepared statement of query (already rewritten by q),
// preparing it once: database/sql then keeps it prepared on every
// connection it runs on, so a hot query is parsed once per connection, not
// once per request.
func (s *DB) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// queryRow runs a hot single-row query through its prepared statement.
func (s *DB) queryRow(ctx context.Context, query string, args ...any) scanner {
	st, err := s.stmt(ctx, s.q(query))
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// writeLock serialises writes on SQLite; PostgreSQL needs no help.
func (s *DB) writeLock() func() {
	if s.dialect != dialectSQLite {
		return func() {}
	}
	s.wmu.Lock()
	return s.wmu.Unlock
}

var _ store.Store = (*DB)(nil)

// Open opens dsn: a postgres:// or postgresql:// URL selects PostgreSQL,
// anything else is a SQLite file path. The schema is created if missing.
func Open(ctx context.Context, dsn string) (*DB, error) {
	var (
		s   *DB
		err error
	)
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		var db *sql.DB
		var cfg *pgx.ConnConfig
		if cfg, err = pgx.ParseConfig(dsn); err == nil {
			// A pooled connection idle for more than 100 ms is pinged before
			// reuse (pgx's default: 1 s): after a database restart, dead
			// connections are replaced instead of failing the requests that
			// draw them. Under load connections are reused sooner and never
			// pinged.
			db = stdlib.OpenDB(*cfg, stdlib.OptionShouldPing(func(_ context.Context, p stdlib.ShouldPingParams) bool {
				return p.IdleDuration > 100*time.Millisecond
			}))
		}
		s = &DB{db: db, dialect: dialectPostgres}
	} else {
		// WAL with synchronous=FULL: a commit is on disk before we answer.
		// _txlock=immediate takes the write lock at BEGIN, so concurrent
		// writers wait (busy_timeout) instead of failing on lock upgrade.
		q := "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_txlock=immediate"
		var db *sql.DB
		db, err = sql.Open("sqlite", "file:"+dsn+q)
		s = &DB{db: db, dialect: dialectSQLite}
	}
	if err != nil {
		return nil, fmt.Errorf("opening store: %w", err)
	}
	// database/sql keeps only 2 idle connections by default: under load
	// every other request would open a new connection (for PostgreSQL a new
	// backend process). Keep a pool sized for concurrent requests.
	if s.dialect == dialectPostgres {
		s.db.SetMaxOpenConns(32)
		s.db.SetMaxIdleConns(32)
	} else {
		s.db.SetMaxIdleConns(8)
	}
	s.db.SetConnMaxIdleTime(5 * time.Minute)
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("connecting to store: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	s.replay = newGroupCommit(s)
	return s, nil
}

func (s *DB) migrate(ctx context.Context) error {
	blob, serial, withoutRowID := "BLOB", "INTEGER PRIMARY KEY AUTOINCREMENT", " WITHOUT ROWID"
	if s.dialect == dialectPostgres {
		blob, serial, withoutRowID = "BYTEA", "BIGSERIAL PRIMARY KEY", ""
	}
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value ` + blob + ` NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS apps (app_id TEXT PRIMARY KEY, kind TEXT NOT NULL, secret ` + blob + ` NOT NULL, created_at BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS keys (key_id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT, spec TEXT NOT NULL,
			origin TEXT NOT NULL, usage TEXT NOT NULL, state TEXT NOT NULL, current_version INTEGER NOT NULL,
			created_at BIGINT NOT NULL, deletion_at BIGINT NOT NULL DEFAULT 0,
			policies TEXT NOT NULL DEFAULT '[]', decrypters TEXT NOT NULL DEFAULT '[]')`,
		`CREATE UNIQUE INDEX IF NOT EXISTS keys_owner_name ON keys (owner, name)`,
		`CREATE INDEX IF NOT EXISTS keys_owner ON keys (owner)`,
		`CREATE TABLE IF NOT EXISTS key_versions (key_id TEXT NOT NULL, version INTEGER NOT NULL, material ` + blob + ` NOT NULL,
			created_at BIGINT NOT NULL, PRIMARY KEY (key_id, version))`,
		`CREATE TABLE IF NOT EXISTS data_keys (owner TEXT NOT NULL, name TEXT NOT NULL, primary_key_id TEXT NOT NULL,
			primary_version INTEGER NOT NULL, wrapped ` + blob + ` NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (owner, name))`,
		// Replay records, keyed timestamp first: concurrent requests carry
		// nearly the same timestamp, so a group commit's records land on
		// one or two index pages instead of one random page each (the
		// nonce is a hash). On SQLite the key is the table (WITHOUT ROWID):
		// two B-trees per record, not three. Same uniqueness as the
		// (app_id, nonce, ts) key of the older table replay, whose rows
		// migrateReplay moves here.
		`CREATE TABLE IF NOT EXISTS replay_records (ts TEXT NOT NULL, app_id TEXT NOT NULL, nonce TEXT NOT NULL, seen_at BIGINT NOT NULL,
			PRIMARY KEY (ts, app_id, nonce))` + withoutRowID,
		`CREATE INDEX IF NOT EXISTS replay_records_seen ON replay_records (seen_at)`,
		`CREATE TABLE IF NOT EXISTS attest_policies (seq ` + serial + `, policy_id TEXT NOT NULL UNIQUE, owner TEXT NOT NULL,
			origin TEXT NOT NULL, document TEXT NOT NULL, created_at BIGINT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS attest_policies_owner ON attest_policies (owner, seq)`,
		`CREATE TABLE IF NOT EXISTS attest_nonces (nonce TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at BIGINT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS attest_nonces_expiry ON attest_nonces (expires_at)`,
		`CREATE TABLE IF NOT EXISTS root_terms (term INTEGER PRIMARY KEY, by_unseal ` + blob + ` NOT NULL, by_previous ` + blob + `,
			created_at BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS secrets (owner TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL,
			encryption_key_id TEXT NOT NULL, rotation_interval TEXT NOT NULL, created_at BIGINT NOT NULL,
			deletion_at BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (owner, name))`,
		`CREATE INDEX IF NOT EXISTS secrets_deletion ON secrets (deletion_at)`,
		// The key generation (store.Store): one row, advanced by every key
		// row write. Databases from before it get the row here too.
		`CREATE TABLE IF NOT EXISTS key_generation (id INTEGER PRIMARY KEY, value BIGINT NOT NULL)`,
		`INSERT INTO key_generation (id, value) VALUES (1, 0) ON CONFLICT (id) DO NOTHING`,
		`CREATE TABLE IF NOT EXISTS secret_versions (owner TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
			wrapped ` + blob + ` NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (owner, name, version))`,
	}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("creating schema: %w", err)
		}
	}
	// Row MACs (added later): a nullable column, filled by the services'
	// backfill on the first start after the upgrade.
	for _, table := range []string{"keys", "attest_policies"} {
		if err := s.addColumn(ctx, table, "mac", blob); err != nil {
			return err
		}
	}
	if err := s.migrateReplay(ctx); err != nil {
		return err
	}
	return s.migrateTermHeaders(ctx)
}

// migrateReplay moves the records of the older replay table (same
// columns, key (app_id, nonce, ts)) into replay_records and drops it, in
// one transaction: every request recorded before the upgrade stays
// refused. A replica that finds the table gone meanwhile has nothing to do.
func (s *DB) migrateReplay(ctx context.Context) error {
	if !s.selectable(ctx, "replay", "1") {
		return nil
	}
	err := func() error {
		defer s.writeLock()()
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		// WHERE true: SQLite would read the ON of ON CONFLICT after a
		// bare FROM as a join constraint.
		if _, err := tx.ExecContext(ctx, `INSERT INTO replay_records (ts, app_id, nonce, seen_at)
			SELECT ts, app_id, nonce, seen_at FROM replay WHERE true ON CONFLICT (ts, app_id, nonce) DO NOTHING`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DROP TABLE replay`); err != nil {
			return err
		}
		return tx.Commit()
	}()
	if err != nil && s.selectable(ctx, "replay", "1") {
		return fmt.Errorf("moving replay records to replay_records: %w", err)
	}
	return nil
}

// selectable reports whether column (or "1") of table can be read: the
// probe for what an older schema lacks.
func (s *DB) selectable(ctx context.Context, table, column string) bool {
	rows, err := s.db.QueryContext(ctx, `SELECT `+column+` FROM `+table+` WHERE 1 = 0`)
	if err != nil {
		return false
	}
	rows.Close()
	return true
}

// addColumn adds a nullable column unless the table has it.
func (s *DB) addColumn(ctx context.Context, table, column, typ string) error {
	if s.selectable(ctx, table, column) {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, `ALTER TABLE `+table+` ADD COLUMN `+column+` `+typ); err != nil {
		if s.selectable(ctx, table, column) { // another replica added it meanwhile
			return nil
		}
		return fmt.Errorf("adding column %s.%s: %w", table, column, err)
	}
	return nil
}

// q rewrites ? placeholders to $n for PostgreSQL.
func (s *DB) q(query string) string {
	if s.dialect != dialectPostgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code()
		return c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || c == sqlite3.SQLITE_CONSTRAINT_UNIQUE
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return err
}

// advanceKeyGeneration counts a key row write, in the writing transaction
// (see store.Store): the change and the new generation commit together.
func (s *DB) advanceKeyGeneration(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `UPDATE key_generation SET value = value + 1 WHERE id = 1`)
	return err
}

// readKeyGeneration is the current key generation.
const readKeyGeneration = `SELECT value FROM key_generation WHERE id = 1`

func (s *DB) GetMeta(ctx context.Context, name string) ([]byte, error) {
	var v []byte
	err := s.queryRow(ctx, `SELECT value FROM meta WHERE name = ?`, name).Scan(&v)
	return v, notFound(err, "meta "+name)
}

func (s *DB) PutMetaIfAbsent(ctx context.Context, name string, value []byte) (bool, error) {
	defer s.writeLock()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	if strings.HasPrefix(name, store.WrappedMetaPrefix) {
		if err := s.requireTerm(ctx, tx, value); err != nil {
			return false, err
		}
	}
	res, err := tx.ExecContext(ctx, s.q(`INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`), name, value)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n == 1, tx.Commit()
}

func (s *DB) CreateApp(ctx context.Context, a store.App) error {
	defer s.writeLock()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if a.Kind == "ehsm" { // the API key is root-wrapped; BigDL users keep a hash
		if err := s.requireTerm(ctx, tx, a.Secret); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO apps (app_id, kind, secret, created_at) VALUES (?, ?, ?, ?)`),
		a.ID, a.Kind, a.Secret, ms(a.CreatedAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("app %s: %w", a.ID, store.ErrExists)
	}
	if err != nil {
		return err
	}
	return tx.Commit()
}

func (s *DB) GetApp(ctx context.Context, id string) (store.App, error) {
	a := store.App{ID: id}
	var created int64
	err := s.queryRow(ctx, `SELECT kind, secret, created_at FROM apps WHERE app_id = ?`, id).
		Scan(&a.Kind, &a.Secret, &created)
	a.CreatedAt = fromMS(created)
	return a, notFound(err, "app")
}

const keyColumns = `key_id, owner, name, spec, origin, usage, state, current_version, created_at, deletion_at, policies, decrypters, mac`

type scanner interface{ Scan(...any) error }

func scanKey(r scanner) (store.Key, error) {
	var (
		k                   store.Key
		name                sql.NullString
		created, deletion   int64
		policies, decrypter string
	)
	err := r.Scan(&k.ID, &k.Owner, &name, &k.Spec, &k.Origin, &k.Usage, &k.State, &k.CurrentVersion,
		&created, &deletion, &policies, &decrypter, &k.MAC)
	if err != nil {
		return k, err
	}
	k.Name = name.String
	k.CreatedAt, k.DeletionAt = fromMS(created), fromMS(deletion)
	if err := json.Unmarshal([]byte(policies), &k.ReleasePolicies); err != nil {
		return k, fmt.Errorf("key %s: corrupt policies column: %w", k.ID, err)
	}
	if err := json.Unmarshal([]byte(decrypter), &k.Decrypters); err != nil {
		return k, fmt.Errorf("key %s: corrupt decrypters column: %w", k.ID, err)
	}
	return k, nil
}

func jsonList(l []string) string {
	if l == nil {
		l = []string{}
	}
	b, _ := json.Marshal(l)
	return string(b)
}

func (s *DB) CreateKey(ctx context.Context, k store.Key, v store.KeyVersion) error {
	defer s.writeLock()()
	tx, err := s.beginUnderTerm(ctx, v.Material)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var name any
	if k.Name != "" {
		name = k.Name
	}
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		k.ID, k.Owner, name, k.Spec, k.Origin, k.Usage, k.State, k.CurrentVersion, ms(k.CreatedAt), ms(k.DeletionAt),
		jsonList(k.ReleasePolicies), jsonList(k.Decrypters), k.MAC)
	if isUniqueViolation(err) {
		return fmt.Errorf("key: %w", store.ErrExists)
	}
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO key_versions (key_id, version, material, created_at) VALUES (?, ?, ?, ?)`),
		v.KeyID, v.Version, v.Material, ms(v.CreatedAt)); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *DB) GetKey(ctx context.Context, id string) (store.Key, error) {
	k, err := scanKey(s.queryRow(ctx, `SELECT `+keyColumns+` FROM keys WHERE key_id = ?`, id))
	return k, notFound(err, "key")
}

func (s *DB) GetKeyByName(ctx context.Context, owner, name string) (store.Key, error) {
	k, err := scanKey(s.queryRow(ctx, `SELECT `+keyColumns+` FROM keys WHERE owner = ? AND name = ?`, owner, name))
	return k, notFound(err, "key")
}

func (s *DB) ListKeys(ctx context.Context, owner string) ([]store.Key, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+keyColumns+` FROM keys WHERE owner = ? ORDER BY created_at, key_id`), owner)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

func (s *DB) GetKeyVersion(ctx context.Context, id string, version int) (store.KeyVersion, error) {
	v := store.KeyVersion{KeyID: id, Version: version}
	var created int64
	err := s.queryRow(ctx, `SELECT material, created_at FROM key_versions WHERE key_id = ? AND version = ?`, id, version).
		Scan(&v.Material, &created)
	v.CreatedAt = fromMS(created)
	return v, notFound(err, "key version")
}

func (s *DB) AddKeyVersion(ctx context.Context, v store.KeyVersion, oldMAC, newMAC []byte) error {
	defer s.writeLock()()
	tx, err := s.beginUnderTerm(ctx, v.Material)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, s.q(`UPDATE keys SET current_version = ?, mac = ? WHERE key_id = ? AND current_version = ? AND mac = ?`),
		v.Version, newMAC, v.KeyID, v.Version-1, oldMAC)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("key %s version %d: %w", v.KeyID, v.Version, store.ErrConflict)
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO key_versions (key_id, version, material, created_at) VALUES (?, ?, ?, ?)`),
		v.KeyID, v.Version, v.Material, ms(v.CreatedAt)); err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("key %s version %d: %w", v.KeyID, v.Version, store.ErrConflict)
		}
		return err
	}
	if err := s.advanceKeyGeneration(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *DB) SetKeyState(ctx context.Context, id, state string, deletionAt time.Time, oldMAC, newMAC []byte) error {
	defer s.writeLock()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, s.q(`UPDATE keys SET state = ?, deletion_at = ?, mac = ? WHERE key_id = ? AND state <> ? AND mac = ?`),
		state, ms(deletionAt), newMAC, id, store.StateDeleted, oldMAC)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		var st string
		if err := tx.QueryRowContext(ctx, s.q(`SELECT state FROM keys WHERE key_id = ?`), id).Scan(&st); err != nil || st == store.StateDeleted {
			return fmt.Errorf("key %s: %w", id, store.ErrNotFound)
		}
		return fmt.Errorf("key %s: %w", id, store.ErrConflict)
	}
	if err := s.advanceKeyGeneration(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *DB) BackfillKeyMACs(ctx context.Context, sum func(store.Key) ([]byte, error)) (int, error) {
	defer s.writeLock()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE mac IS NULL`)
	if err != nil {
		return 0, err
	}
	var keys []store.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			rows.Close()
			return 0, err
		}
		keys = append(keys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, k := range keys {
		mac, err := sum(k)
		if err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE keys SET mac = ? WHERE key_id = ? AND mac IS NULL`), mac, k.ID); err != nil {
			return 0, err
		}
	}
	if len(keys) > 0 {
		if err := s.advanceKeyGeneration(ctx, tx); err != nil {
			return 0, err
		}
	}
	return len(keys), tx.Commit()
}

func (s *DB) DestroyDueKeys(ctx context.Context, now time.Time) ([]string, error) {
	defer s.writeLock()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, s.q(`SELECT key_id FROM keys WHERE state = ? AND deletion_at <= ?`),
		store.StatePendingDeletion, ms(now))
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM key_versions WHERE key_id = ?`), id); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM data_keys WHERE primary_key_id = ?`), id); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE keys SET state = ? WHERE key_id = ?`), store.StateDeleted, id); err != nil {
			return nil, err
		}
	}
	if len(ids) > 0 {
		if err := s.advanceKeyGeneration(ctx, tx); err != nil {
			return nil, err
		}
	}
	return ids, tx.Commit()
}

func (s *DB) CountKeys(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT state, COUNT(*) FROM keys GROUP BY state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}

func (s *DB) CreateDataKey(ctx context.Context, d store.DataKey) error {
	defer s.writeLock()()
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO data_keys (owner, name, primary_key_id, primary_version, wrapped, created_at) VALUES (?, ?, ?, ?, ?, ?)`),
		d.Owner, d.Name, d.PrimaryKeyID, d.PrimaryVersion, d.Wrapped, ms(d.CreatedAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("data key %s: %w", d.Name, store.ErrExists)
	}
	return err
}

func (s *DB) GetDataKey(ctx context.Context, owner, name string) (store.DataKey, error) {
	d := store.DataKey{Owner: owner, Name: name}
	var created int64
	err := s.queryRow(ctx, `SELECT primary_key_id, primary_version, wrapped, created_at FROM data_keys WHERE owner = ? AND name = ?`, owner, name).
		Scan(&d.PrimaryKeyID, &d.PrimaryVersion, &d.Wrapped, &created)
	d.CreatedAt = fromMS(created)
	return d, notFound(err, "data key")
}

// RecordRequest waits for the group commit that makes its record durable
// (see groupCommit): nothing is answered before that commit. The key
// generation is read in that commit's transaction.
func (s *DB) RecordRequest(ctx context.Context, app, nonce, timestamp string, now, notBefore time.Time) (bool, int64, error) {
	return s.replay.record(ctx, replayRecord{app: app, nonce: nonce, ts: timestamp, now: ms(now), notBefore: ms(notBefore)})
}

func (s *DB) PurgeRequests(ctx context.Context, before time.Time) error {
	defer s.writeLock()()
	_, err := s.db.ExecContext(ctx, s.q(`DELETE FROM replay_records WHERE seen_at < ?`), ms(before))
	return err
}

func (s *DB) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

func (s *DB) Close() error {
	s.replay.close()
	s.stmts.Range(func(_, st any) bool { st.(*sql.Stmt).Close(); return true })
	return s.db.Close()
}
