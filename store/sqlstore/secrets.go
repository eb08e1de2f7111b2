package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/ppml-project/ppml/store"
)

var _ store.SecretStore = (*DB)(nil)

const secretColumns = `owner, name, description, encryption_key_id, rotation_interval, created_at, deletion_at`

func (s *DB) CreateSecret(ctx context.Context, sec store.Secret, v store.SecretVersion) error {
	defer s.writeLock()()
	tx, err := s.beginUnderTerm(ctx, v.Wrapped)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO secrets (`+secretColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		sec.Owner, sec.Name, sec.Description, sec.EncryptionKeyID, sec.RotationInterval, ms(sec.CreatedAt), ms(sec.DeletionAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("secret %s: %w", sec.Name, store.ErrExists)
	}
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO secret_versions (owner, name, version, wrapped, created_at) VALUES (?, ?, ?, ?, ?)`),
		v.Owner, v.Name, v.Version, v.Wrapped, ms(v.CreatedAt)); err != nil {
		return err
	}
	return tx.Commit()
}

func scanSecret(row scanner) (store.Secret, error) {
	var (
		sec              store.Secret
		created, deleted int64
	)
	err := row.Scan(&sec.Owner, &sec.Name, &sec.Description, &sec.EncryptionKeyID, &sec.RotationInterval, &created, &deleted)
	sec.CreatedAt, sec.DeletionAt = fromMS(created), fromMS(deleted)
	return sec, notFound(err, "secret")
}

func (s *DB) GetSecret(ctx context.Context, owner, name string) (store.Secret, error) {
	return scanSecret(s.db.QueryRowContext(ctx, s.q(`SELECT `+secretColumns+` FROM secrets WHERE owner = ? AND name = ?`), owner, name))
}

func (s *DB) ListSecrets(ctx context.Context, owner, name string) ([]store.Secret, error) {
	q, args := `SELECT `+secretColumns+` FROM secrets WHERE owner = ?`, []any{owner}
	if name != "" {
		q, args = q+` AND name = ?`, append(args, name)
	}
	rows, err := s.db.QueryContext(ctx, s.q(q+` ORDER BY created_at, name`), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Secret
	for rows.Next() {
		sec, err := scanSecret(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sec)
	}
	return out, rows.Err()
}

func (s *DB) UpdateSecret(ctx context.Context, sec store.Secret) error {
	defer s.writeLock()()
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE secrets SET description = ?, deletion_at = ? WHERE owner = ? AND name = ?`),
		sec.Description, ms(sec.DeletionAt), sec.Owner, sec.Name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("secret %s: %w", sec.Name, store.ErrNotFound)
	}
	return nil
}

func (s *DB) AddSecretVersion(ctx context.Context, v store.SecretVersion) error {
	defer s.writeLock()()
	tx, err := s.beginUnderTerm(ctx, v.Wrapped)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO secret_versions (owner, name, version, wrapped, created_at) VALUES (?, ?, ?, ?, ?)`),
		v.Owner, v.Name, v.Version, v.Wrapped, ms(v.CreatedAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("secret %s version %d: %w", v.Name, v.Version, store.ErrConflict)
	}
	if err != nil {
		return err
	}
	return tx.Commit()
}

func (s *DB) GetSecretVersion(ctx context.Context, owner, name string, version int) (store.SecretVersion, error) {
	var row scanner
	if version == 0 {
		row = s.db.QueryRowContext(ctx, s.q(`SELECT owner, name, version, wrapped, created_at FROM secret_versions
			WHERE owner = ? AND name = ? ORDER BY version DESC LIMIT 1`), owner, name)
	} else {
		row = s.db.QueryRowContext(ctx, s.q(`SELECT owner, name, version, wrapped, created_at FROM secret_versions
			WHERE owner = ? AND name = ? AND version = ?`), owner, name, version)
	}
	var (
		v       store.SecretVersion
		created int64
	)
	err := row.Scan(&v.Owner, &v.Name, &v.Version, &v.Wrapped, &created)
	v.CreatedAt = fromMS(created)
	return v, notFound(err, "secret version")
}

func (s *DB) ListSecretVersions(ctx context.Context, owner, name string) ([]store.SecretVersion, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT version, created_at FROM secret_versions WHERE owner = ? AND name = ? ORDER BY version`), owner, name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.SecretVersion
	for rows.Next() {
		v := store.SecretVersion{Owner: owner, Name: name}
		var created int64
		if err := rows.Scan(&v.Version, &created); err != nil {
			return nil, err
		}
		v.CreatedAt = fromMS(created)
		out = append(out, v)
	}
	return out, rows.Err()
}

func (s *DB) DestroySecret(ctx context.Context, owner, name string) error {
	defer s.writeLock()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, s.q(`DELETE FROM secrets WHERE owner = ? AND name = ?`), owner, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("secret %s: %w", name, store.ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM secret_versions WHERE owner = ? AND name = ?`), owner, name); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *DB) DestroyDueSecrets(ctx context.Context, now time.Time) (int, error) {
	defer s.writeLock()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	cut := now.UnixMilli()
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM secret_versions WHERE EXISTS (SELECT 1 FROM secrets d
		WHERE d.owner = secret_versions.owner AND d.name = secret_versions.name AND d.deletion_at > 0 AND d.deletion_at <= ?)`), cut); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, s.q(`DELETE FROM secrets WHERE deletion_at > 0 AND deletion_at <= ?`), cut)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return int(n), tx.Commit()
}
