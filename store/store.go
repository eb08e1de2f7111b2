// Package store defines the persistent state of the KMS and the interface its
// backends implement. Everything secret in it is already wrapped (AEAD under
// the root key or a primary key) before it reaches a Store.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors a backend returns; callers test them with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrConflict = errors.New("concurrent modification")
)

// App is a principal: an eHSM-style application (id = UUID, Secret = API key
// wrapped under the root key) or a BigDL KMS user (id = "bigdl:<name>",
// Secret = a salted slow hash of the token).
type App struct {
	ID        string
	Kind      string
	Secret    []byte
	CreatedAt time.Time
}

// Key states.
const (
	StateEnabled         = "Enabled"
	StateDisabled        = "Disabled"
	StatePendingDeletion = "PendingDeletion"
	StateDeleted         = "Deleted"
)

// Key is a primary (customer master) key. Its material lives in KeyVersions.
type Key struct {
	ID              string
	Owner           string
	Name            string // optional per-owner name (BigDL primary key names)
	Spec            string
	Origin          string
	Usage           string
	State           string
	CurrentVersion  int
	CreatedAt       time.Time
	DeletionAt      time.Time // zero unless State is PendingDeletion or Deleted
	ReleasePolicies []string  // attestation policy ids a release needs (empty: none)
	Decrypters      []string  // app ids allowed to decrypt a policy-bound key without attestation
	// MAC authenticates every field above (package kms computes and checks
	// it under the row MAC key, see store/rowmac); nil only for rows
	// written before row MACs existed.
	MAC []byte
}

// KeyVersion is one generation of a key's material, wrapped under the root key.
type KeyVersion struct {
	KeyID     string
	Version   int
	Material  []byte
	CreatedAt time.Time
}

// DataKey is a named data key (BigDL KMS), wrapped under a primary key version.
type DataKey struct {
	Owner          string
	Name           string
	PrimaryKeyID   string
	PrimaryVersion int
	Wrapped        []byte
	CreatedAt      time.Time
}

// RootWrapped is a row whose blob is wrapped under the root keyring (see
// ListRootWrapped).
type RootWrapped struct {
	Kind    string // "key_version", "app", "meta" (a WrappedMetaPrefix entry) or "secret" (a secret version)
	ID      string // app id, key id, meta name or secret name
	Version int
	Owner   string // key or secret owner (key_version and secret)
	Spec    string // key spec (key_version only)
	Blob    []byte
}

// AAD is the associated data the blob is bound to.
func (r RootWrapped) AAD() []byte {
	if r.Kind == "app" {
		return AppSecretAAD(r.ID)
	}
	if r.Kind == "meta" {
		return WrappedMetaAAD(r.ID)
	}
	if r.Kind == "secret" {
		return SecretAAD(r.Owner, r.ID, r.Version)
	}
	return KeyMaterialAAD(r.ID, r.Version, r.Owner, r.Spec)
}

// AppSecretAAD binds a wrapped API key to its app id.
func AppSecretAAD(appID string) []byte {
	return []byte("ppml/app-secret/v1\x00" + appID)
}

// KeyMaterialAAD binds wrapped key material to the key's identity, so a row
// edited or swapped in the database fails to unwrap.
func KeyMaterialAAD(keyID string, version int, owner, spec string) []byte {
	return []byte(fmt.Sprintf("ppml/key-material/v1\x00%s\x00%d\x00%s\x00%s", keyID, version, owner, spec))
}

// Store is the persistence interface. Implementations must make every
// acknowledged write durable before returning.
//
// The key generation is a counter every write of a key row advances in the
// writing transaction (AddKeyVersion, SetKeyState, BackfillKeyMACs,
// DestroyDueKeys; CreateKey need not: no reader can hold a row that did
// not exist). A reader that keeps key rows in memory labels each with the
// generation read before the row and uses it only while the generation is
// unchanged (see package kms, keycache.go).
type Store interface {
	GetMeta(ctx context.Context, name string) ([]byte, error)
	// PutMetaIfAbsent stores value unless name exists; it reports whether it wrote.
	PutMetaIfAbsent(ctx context.Context, name string, value []byte) (bool, error)

	CreateApp(ctx context.Context, a App) error
	GetApp(ctx context.Context, id string) (App, error)

	// CreateKey stores a key and its first version atomically.
	CreateKey(ctx context.Context, k Key, v KeyVersion) error
	GetKey(ctx context.Context, id string) (Key, error)
	GetKeyByName(ctx context.Context, owner, name string) (Key, error)
	ListKeys(ctx context.Context, owner string) ([]Key, error)
	GetKeyVersion(ctx context.Context, id string, version int) (KeyVersion, error)
	// AddKeyVersion appends v and makes it current, with the key row's new
	// MAC, if the key's current version is still v.Version-1 and its MAC
	// still oldMAC (ErrConflict otherwise).
	AddKeyVersion(ctx context.Context, v KeyVersion, oldMAC, newMAC []byte) error
	// SetKeyState changes state, deletion time and MAC of a key whose MAC is
	// still oldMAC (ErrConflict otherwise; ErrNotFound for a deleted key).
	SetKeyState(ctx context.Context, id, state string, deletionAt time.Time, oldMAC, newMAC []byte) error
	// BackfillKeyMACs sets the MAC of every key row that has none to
	// sum(row), in one transaction, and returns how many it set (the
	// upgrade to row MACs).
	BackfillKeyMACs(ctx context.Context, sum func(Key) ([]byte, error)) (int, error)
	// DestroyDueKeys destroys the material of keys whose scheduled deletion
	// time is before now, marks them Deleted and returns their ids.
	DestroyDueKeys(ctx context.Context, now time.Time) ([]string, error)
	CountKeys(ctx context.Context) (map[string]int, error)

	CreateDataKey(ctx context.Context, d DataKey) error
	GetDataKey(ctx context.Context, owner, name string) (DataKey, error)

	// RecordRequest remembers (app, nonce, timestamp) and reports false when
	// the same tuple was recorded after notBefore (a replay). It also
	// returns the key generation read in the transaction that committed the
	// record, so after the call began: every key write committed before the
	// request arrived, on any replica, is counted in it.
	RecordRequest(ctx context.Context, app, nonce, timestamp string, now, notBefore time.Time) (fresh bool, keyGeneration int64, err error)
	PurgeRequests(ctx context.Context, before time.Time) error

	// The root keyring. Every write of a root-wrapped blob (CreateApp of an
	// ehsm app, CreateKey, AddKeyVersion, PutMetaIfAbsent of a
	// WrappedMetaPrefix entry) fails with ErrStaleTerm unless the blob is
	// under the current term, checked in the writing transaction.
	KeyringStore

	Ping(ctx context.Context) error
	Close() error
}
