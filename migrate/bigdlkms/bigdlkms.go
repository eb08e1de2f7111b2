// Package bigdlkms reads an upstream BigDL KMS database (kms.db, SQLite) so
// that its keys can move into ppml: names and tokens are stored there as
// base64(MD5(text)) and keys as base64 of AES-ECB/PKCS#5 under the parent
// key (bigdl-kms-protocol.md §3). The ECB unwrap exists only here, for
// migration; ppml re-wraps everything with AES-GCM bound to its identity.
package bigdlkms

import (
	"context"
	"crypto/aes"
	"crypto/md5"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"os"

	_ "modernc.org/sqlite"
)

// DB is an opened upstream database.
type DB struct{ db *sql.DB }

// Open opens kms.db read-only.
func Open(path string) (*DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("upstream BigDL KMS database: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, err
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('user', 'key')`).Scan(&n); err != nil || n != 2 {
		db.Close()
		return nil, fmt.Errorf("%s is not a BigDL KMS database (tables user and key missing)", path)
	}
	return &DB{db: db}, nil
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// Hash is upstream's name and token hash: base64(MD5(UTF-8 text)).
func Hash(s string) string {
	sum := md5.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// CheckUser verifies that user exists upstream with this token.
func (d *DB) CheckUser(ctx context.Context, user, token string) error {
	var stored string
	err := d.db.QueryRowContext(ctx, `SELECT token FROM user WHERE name = ?`, Hash(user)).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("user %q is not in the upstream database", user)
	}
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(stored), []byte(Hash(token))) != 1 {
		return fmt.Errorf("the token given for user %q does not match the upstream database", user)
	}
	return nil
}

// Key returns the raw key name of user, unwrapped with parent (the root key
// for primary keys, the primary key for data keys).
func (d *DB) Key(ctx context.Context, user, name string, parent []byte) ([]byte, error) {
	var data string
	err := d.db.QueryRowContext(ctx, `SELECT data FROM key WHERE user = ? AND name = ?`, Hash(user), Hash(name)).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("key %q of user %q is not in the upstream database", name, user)
	}
	if err != nil {
		return nil, err
	}
	wrapped, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return nil, fmt.Errorf("key %q: stored value is not base64", name)
	}
	k, err := UnwrapECB(parent, wrapped)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w (wrong root key, or wrong primary key for this data key?)", name, err)
	}
	return k, nil
}

// UnwrapECB reverses upstream's wrapping: AES-ECB with PKCS#5 padding.
func UnwrapECB(key, wrapped []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("wrapping key of %d bytes: %w", len(key), err)
	}
	if len(wrapped) == 0 || len(wrapped)%aes.BlockSize != 0 {
		return nil, errors.New("wrapped key is not a whole number of AES blocks")
	}
	out := make([]byte, len(wrapped))
	for i := 0; i < len(wrapped); i += aes.BlockSize {
		block.Decrypt(out[i:i+aes.BlockSize], wrapped[i:i+aes.BlockSize])
	}
	pad := int(out[len(out)-1])
	if pad < 1 || pad > aes.BlockSize || pad > len(out) {
		return nil, errors.New("bad padding after unwrapping")
	}
	for _, b := range out[len(out)-pad:] {
		if int(b) != pad {
			return nil, errors.New("bad padding after unwrapping")
		}
	}
	return out[:len(out)-pad], nil
}
