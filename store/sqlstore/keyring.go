package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ppml-project/ppml/store"
)

// Meta entries of the root keyring (root_key_check predates terms: it is the
// unseal key's check value, as before).
const (
	metaCheck      = "root_key_check"
	metaTerm       = "root_term"       // the current term, decimal
	metaUnsealKey  = "root_unseal_key" // the unseal key under the current term
	metaRekey      = "root_rekey"      // pending rekey: id, NUL, wrapped new unseal key
	metaRekeyDone  = "root_rekey_done" // id of the last committed rekey
	metaSchema     = "schema_version"  // 2: root-wrapped blobs carry a term
	schemaVersion  = "2"
	legacyTermBlob = 1
)

// queryer is what *sql.DB and *sql.Tx share.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// currentTerm reads the current term inside tx. On PostgreSQL it takes a
// share lock on the row, so a rotation (which updates it) waits for this
// transaction and a transaction that waited reads the new term: nothing
// wrapped under the old term commits after the rotation.
func (s *DB) currentTerm(ctx context.Context, q queryer, forShare bool) (int, error) {
	query := `SELECT value FROM meta WHERE name = ?`
	if forShare && s.dialect == dialectPostgres {
		query += ` FOR SHARE`
	}
	var v []byte
	err := q.QueryRowContext(ctx, s.q(query), metaTerm).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		return 0, fmt.Errorf("meta %s is corrupt: %q", metaTerm, v)
	}
	return n, nil
}

// beginUnderTerm starts a write transaction that stores blob, first checking
// (in that transaction) that blob is under the current term. The caller
// holds writeLock and defers tx.Rollback.
func (s *DB) beginUnderTerm(ctx context.Context, blob []byte) (*sql.Tx, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	if err := s.requireTerm(ctx, tx, blob); err != nil {
		tx.Rollback()
		return nil, err
	}
	return tx, nil
}

// requireTerm fails with store.ErrStaleTerm unless blob is under the current term.
func (s *DB) requireTerm(ctx context.Context, q queryer, blob []byte) error {
	cur, err := s.currentTerm(ctx, q, true)
	if err != nil {
		return err
	}
	term, ok := store.BlobTerm(blob)
	if !ok || cur == 0 || term != cur {
		return fmt.Errorf("%w (blob term %d, current term %d)", store.ErrStaleTerm, term, cur)
	}
	return nil
}

func (s *DB) metaIn(ctx context.Context, q queryer, name string) ([]byte, error) {
	var v []byte
	err := q.QueryRowContext(ctx, s.q(`SELECT value FROM meta WHERE name = ?`), name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return v, err
}

func (s *DB) setMeta(ctx context.Context, q queryer, name string, value []byte) error {
	_, err := q.ExecContext(ctx, s.q(`INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`), name, value)
	return err
}

// migrateTermHeaders makes a store of schema 1 (blobs sealed directly under
// the root key) a store of schema 2: each root-wrapped blob is prefixed with
// term 1, whose key the keyring makes the old root key itself, so nothing is
// decrypted or re-encrypted here. Exactly one replica runs it: the INSERT of
// the schema version serialises concurrent starts.
func (s *DB) migrateTermHeaders(ctx context.Context) error {
	defer s.writeLock()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, s.q(`INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`), metaSchema, []byte(schemaVersion))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil // already at schema 2
	}
	type row struct {
		key  []any
		blob []byte
	}
	collect := func(query string, args ...any) ([]row, error) {
		rows, err := tx.QueryContext(ctx, s.q(query), args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []row
		for rows.Next() {
			var id string
			var version int
			var blob []byte
			dest := []any{&id, &blob}
			if strings.Contains(query, "version") {
				dest = []any{&id, &version, &blob}
			}
			if err := rows.Scan(dest...); err != nil {
				return nil, err
			}
			r := row{key: []any{id}, blob: blob}
			if len(dest) == 3 {
				r.key = append(r.key, version)
			}
			out = append(out, r)
		}
		return out, rows.Err()
	}
	for _, m := range []struct{ sel, upd string }{
		{`SELECT app_id, secret FROM apps WHERE kind = 'ehsm'`, `UPDATE apps SET secret = ? WHERE app_id = ?`},
		{`SELECT key_id, version, material FROM key_versions`, `UPDATE key_versions SET material = ? WHERE key_id = ? AND version = ?`},
		{`SELECT name, value FROM meta WHERE name LIKE '` + store.WrappedMetaPrefix + `%'`, `UPDATE meta SET value = ? WHERE name = ?`},
	} {
		rows, err := collect(m.sel)
		if err != nil {
			return fmt.Errorf("migrating root-wrapped blobs to terms: %w", err)
		}
		for _, r := range rows {
			args := append([]any{store.WithTerm(legacyTermBlob, r.blob)}, r.key...)
			if _, err := tx.ExecContext(ctx, s.q(m.upd), args...); err != nil {
				return fmt.Errorf("migrating root-wrapped blobs to terms: %w", err)
			}
		}
	}
	return tx.Commit()
}

func (s *DB) LoadKeyring(ctx context.Context) (store.Keyring, error) {
	var kr store.Keyring
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: s.dialect == dialectPostgres})
	if err != nil {
		return kr, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT term, by_unseal, by_previous, created_at FROM root_terms ORDER BY term`)
	if err != nil {
		return kr, err
	}
	for rows.Next() {
		var t store.RootTerm
		var created int64
		if err := rows.Scan(&t.Term, &t.ByUnseal, &t.ByPrevious, &created); err != nil {
			rows.Close()
			return kr, err
		}
		t.CreatedAt = fromMS(created)
		kr.Terms = append(kr.Terms, t)
	}
	rows.Close()
	if kr.Current, err = s.currentTerm(ctx, tx, false); err != nil {
		return kr, err
	}
	if kr.Check, err = s.metaIn(ctx, tx, metaCheck); err != nil {
		return kr, err
	}
	if kr.UnsealKey, err = s.metaIn(ctx, tx, metaUnsealKey); err != nil {
		return kr, err
	}
	p, err := s.metaIn(ctx, tx, metaRekey)
	if err != nil {
		return kr, err
	}
	if i := bytes.IndexByte(p, 0); i > 0 {
		kr.Pending = &store.PendingRekey{ID: string(p[:i]), UnsealKey: p[i+1:]}
	}
	return kr, tx.Commit()
}

func (s *DB) insertTerm(ctx context.Context, tx *sql.Tx, t store.RootTerm) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO root_terms (term, by_unseal, by_previous, created_at) VALUES (?, ?, ?, ?)`),
		t.Term, t.ByUnseal, t.ByPrevious, ms(t.CreatedAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("root key term %d: %w", t.Term, store.ErrConflict)
	}
	return err
}

func (s *DB) InitKeyring(ctx context.Context, check []byte, t store.RootTerm, unsealKey []byte) (bool, error) {
	if t.Term != 1 {
		return false, errors.New("the first root key term must be 1")
	}
	defer s.writeLock()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	// Lock the term row first: two replicas initialising at once serialise here.
	res, err := tx.ExecContext(ctx, s.q(`INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`), metaTerm, []byte("1"))
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	old, err := s.metaIn(ctx, tx, metaCheck)
	if err != nil {
		return false, err
	}
	if old != nil && !bytes.Equal(old, check) {
		return false, fmt.Errorf("root key check value: %w", store.ErrConflict)
	}
	if err := s.setMeta(ctx, tx, metaCheck, check); err != nil {
		return false, err
	}
	if err := s.insertTerm(ctx, tx, t); err != nil {
		return false, err
	}
	if err := s.setMeta(ctx, tx, metaUnsealKey, unsealKey); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// lockTerm reads the current term for update (PostgreSQL), so that keyring
// changes serialise and wait for in-flight wraps under the old term.
func (s *DB) lockTerm(ctx context.Context, tx *sql.Tx) (int, error) {
	query := `SELECT value FROM meta WHERE name = ?`
	if s.dialect == dialectPostgres {
		query += ` FOR UPDATE`
	}
	var v []byte
	if err := tx.QueryRowContext(ctx, s.q(query), metaTerm).Scan(&v); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil
		}
		return 0, err
	}
	return strconv.Atoi(string(v))
}

func (s *DB) AddTerm(ctx context.Context, t store.RootTerm, check, unsealKey []byte) error {
	defer s.writeLock()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	cur, err := s.lockTerm(ctx, tx)
	if err != nil {
		return err
	}
	if cur == 0 || cur != t.Term-1 {
		return fmt.Errorf("adding root key term %d: current term is %d: %w", t.Term, cur, store.ErrConflict)
	}
	old, err := s.metaIn(ctx, tx, metaCheck)
	if err != nil {
		return err
	}
	if !bytes.Equal(old, check) {
		return fmt.Errorf("adding root key term %d: the unseal key changed: %w", t.Term, store.ErrConflict)
	}
	if err := s.insertTerm(ctx, tx, t); err != nil {
		return err
	}
	if err := s.setMeta(ctx, tx, metaTerm, []byte(strconv.Itoa(t.Term))); err != nil {
		return err
	}
	if err := s.setMeta(ctx, tx, metaUnsealKey, unsealKey); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *DB) PrepareRekey(ctx context.Context, p store.PendingRekey) error {
	if p.ID == "" || strings.IndexByte(p.ID, 0) >= 0 {
		return errors.New("rekey id must be non-empty text")
	}
	defer s.writeLock()()
	tx, err := s.beginUnderTerm(ctx, p.UnsealKey)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := s.setMeta(ctx, tx, metaRekey, append([]byte(p.ID+"\x00"), p.UnsealKey...)); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *DB) CommitRekey(ctx context.Context, id string, oldCheck, newCheck []byte, current int, byUnseal map[int][]byte, unsealKey []byte) (bool, error) {
	defer s.writeLock()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	cur, err := s.lockTerm(ctx, tx)
	if err != nil {
		return false, err
	}
	done, err := s.metaIn(ctx, tx, metaRekeyDone)
	if err != nil {
		return false, err
	}
	if string(done) == id {
		return true, nil
	}
	p, err := s.metaIn(ctx, tx, metaRekey)
	if err != nil {
		return false, err
	}
	if !bytes.HasPrefix(p, []byte(id+"\x00")) {
		return false, fmt.Errorf("rekey %s is not the pending rekey (another rekey replaced it, or it was never prepared): %w", id, store.ErrConflict)
	}
	old, err := s.metaIn(ctx, tx, metaCheck)
	if err != nil {
		return false, err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM root_terms`).Scan(&n); err != nil {
		return false, err
	}
	if cur != current || !bytes.Equal(old, oldCheck) || n != len(byUnseal) {
		return false, fmt.Errorf("rekey: the keyring changed meanwhile: %w", store.ErrConflict)
	}
	for term, blob := range byUnseal {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE root_terms SET by_unseal = ? WHERE term = ?`), blob, term)
		if err != nil {
			return false, err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return false, fmt.Errorf("rekey: no term %d: %w", term, store.ErrConflict)
		}
	}
	for name, v := range map[string][]byte{metaCheck: newCheck, metaUnsealKey: unsealKey, metaRekeyDone: []byte(id)} {
		if err := s.setMeta(ctx, tx, name, v); err != nil {
			return false, err
		}
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM meta WHERE name = ?`), metaRekey); err != nil {
		return false, err
	}
	return false, tx.Commit()
}

func (s *DB) ListRootWrapped(ctx context.Context, kind, after string, limit int) ([]store.RootWrapped, error) {
	var rows *sql.Rows
	var err error
	switch kind {
	case "app":
		rows, err = s.db.QueryContext(ctx, s.q(`SELECT app_id, secret FROM apps WHERE kind = 'ehsm' AND app_id > ? ORDER BY app_id LIMIT ?`), after, limit)
	case "meta":
		if after == "" {
			after = store.WrappedMetaPrefix
		}
		rows, err = s.db.QueryContext(ctx, s.q(`SELECT name, value FROM meta WHERE name LIKE ? AND name > ? ORDER BY name LIMIT ?`), store.WrappedMetaPrefix+"%", after, limit)
	case "key_version":
		id, version := after, -1
		if i := strings.IndexByte(after, 0); i >= 0 && len(after) == i+5 {
			id, version = after[:i], int(binary.BigEndian.Uint32([]byte(after[i+1:])))
		}
		rows, err = s.db.QueryContext(ctx, s.q(`SELECT v.key_id, v.version, k.owner, k.spec, v.material FROM key_versions v JOIN keys k ON k.key_id = v.key_id
			WHERE v.key_id > ? OR (v.key_id = ? AND v.version > ?) ORDER BY v.key_id, v.version LIMIT ?`), id, id, version, limit)
	case "secret":
		owner, name, version := "", "", -1
		if parts := strings.SplitN(after, "\x00", 3); len(parts) == 3 && len(parts[2]) == 4 {
			owner, name, version = parts[0], parts[1], int(binary.BigEndian.Uint32([]byte(parts[2])))
		}
		rows, err = s.db.QueryContext(ctx, s.q(`SELECT owner, name, version, wrapped FROM secret_versions
			WHERE owner > ? OR (owner = ? AND (name > ? OR (name = ? AND version > ?))) ORDER BY owner, name, version LIMIT ?`),
			owner, owner, name, name, version, limit)
	default:
		return nil, fmt.Errorf("unknown root-wrapped kind %q", kind)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.RootWrapped
	for rows.Next() {
		it := store.RootWrapped{Kind: kind}
		dest := []any{&it.ID, &it.Blob}
		if kind == "key_version" {
			dest = []any{&it.ID, &it.Version, &it.Owner, &it.Spec, &it.Blob}
		}
		if kind == "secret" {
			dest = []any{&it.Owner, &it.ID, &it.Version, &it.Blob}
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

func (s *DB) ReplaceRootWrapped(ctx context.Context, it store.RootWrapped, blob []byte) (bool, error) {
	defer s.writeLock()()
	tx, err := s.beginUnderTerm(ctx, blob)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var res sql.Result
	switch it.Kind {
	case "app":
		res, err = tx.ExecContext(ctx, s.q(`UPDATE apps SET secret = ? WHERE app_id = ? AND secret = ?`), blob, it.ID, it.Blob)
	case "meta":
		res, err = tx.ExecContext(ctx, s.q(`UPDATE meta SET value = ? WHERE name = ? AND value = ?`), blob, it.ID, it.Blob)
	case "key_version":
		res, err = tx.ExecContext(ctx, s.q(`UPDATE key_versions SET material = ? WHERE key_id = ? AND version = ? AND material = ?`), blob, it.ID, it.Version, it.Blob)
	case "secret":
		res, err = tx.ExecContext(ctx, s.q(`UPDATE secret_versions SET wrapped = ? WHERE owner = ? AND name = ? AND version = ? AND wrapped = ?`), blob, it.Owner, it.ID, it.Version, it.Blob)
	default:
		return false, fmt.Errorf("unknown root-wrapped kind %q", it.Kind)
	}
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, tx.Commit()
}
