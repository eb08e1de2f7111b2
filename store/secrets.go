package store

import (
	"context"
	"fmt"
	"time"
)

// Secret is an application secret's metadata (eHSM's secret manager). Its
// values are SecretVersions.
type Secret struct {
	Owner            string // app id; another app's secret is not found
	Name             string
	Description      string
	EncryptionKeyID  string // the owner's CMK that also encrypts the values ("" : root keyring only)
	RotationInterval string // eHSM's "30d", "12h", ... ("" : none)
	CreatedAt        time.Time
	DeletionAt       time.Time // zero unless deletion is scheduled
}

// SecretVersion is one value of a secret, wrapped under the root keyring
// with SecretAAD (and, with an EncryptionKeyID, encrypted under that CMK
// first).
type SecretVersion struct {
	Owner     string
	Name      string
	Version   int
	Wrapped   []byte
	CreatedAt time.Time
}

// SecretAAD binds a wrapped secret value to its owner, name and version,
// so a row edited or swapped in the database fails to unwrap.
func SecretAAD(owner, name string, version int) []byte {
	return []byte(fmt.Sprintf("ppml/secret/v1\x00%s\x00%s\x00%d", owner, name, version))
}

// SecretStore keeps the secret manager's state.
type SecretStore interface {
	// CreateSecret stores a secret and its first version atomically
	// (ErrExists when owner already has a secret called s.Name).
	// CreateSecret and AddSecretVersion fail with ErrStaleTerm unless the
	// value is wrapped under the root keyring's current term.
	CreateSecret(ctx context.Context, s Secret, v SecretVersion) error
	GetSecret(ctx context.Context, owner, name string) (Secret, error)
	// ListSecrets returns owner's secrets by name ("" : all of them).
	ListSecrets(ctx context.Context, owner, name string) ([]Secret, error)
	// UpdateSecret sets description and deletion time.
	UpdateSecret(ctx context.Context, s Secret) error
	// AddSecretVersion appends v (ErrConflict when v.Version exists).
	AddSecretVersion(ctx context.Context, v SecretVersion) error
	// GetSecretVersion returns version (0 : the newest).
	GetSecretVersion(ctx context.Context, owner, name string, version int) (SecretVersion, error)
	// ListSecretVersions returns the versions without their values, oldest first.
	ListSecretVersions(ctx context.Context, owner, name string) ([]SecretVersion, error)
	// DestroySecret removes a secret and every version (ErrNotFound if absent).
	DestroySecret(ctx context.Context, owner, name string) error
	// DestroyDueSecrets destroys secrets whose scheduled deletion time is
	// before now and returns how many.
	DestroyDueSecrets(ctx context.Context, now time.Time) (int, error)
}
