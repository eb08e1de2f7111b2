package instrumented

import (
	"context"
	"errors"
	"time"

	"github.com/ppml-project/ppml/store"
)

var _ store.SecretStore = (*Store)(nil)

// ErrNoSecretStore is returned by the secret methods when the wrapped
// store does not implement store.SecretStore.
var ErrNoSecretStore = errors.New("store does not implement the secret store")

func (s *Store) secretStore() (store.SecretStore, error) {
	ss, ok := s.next.(store.SecretStore)
	if !ok {
		return nil, ErrNoSecretStore
	}
	return ss, nil
}

// timedSecret runs one secret store call and reports it.
func timedSecret[T any](s *Store, op string, call func(store.SecretStore) (T, error)) (T, error) {
	ss, err := s.secretStore()
	if err != nil {
		var zero T
		return zero, err
	}
	start := time.Now()
	v, err := call(ss)
	s.done(op, start, err)
	return v, err
}

func (s *Store) CreateSecret(ctx context.Context, sec store.Secret, v store.SecretVersion) error {
	_, err := timedSecret(s, "CreateSecret", func(ss store.SecretStore) (struct{}, error) { return struct{}{}, ss.CreateSecret(ctx, sec, v) })
	return err
}

func (s *Store) GetSecret(ctx context.Context, owner, name string) (store.Secret, error) {
	return timedSecret(s, "GetSecret", func(ss store.SecretStore) (store.Secret, error) { return ss.GetSecret(ctx, owner, name) })
}

func (s *Store) ListSecrets(ctx context.Context, owner, name string) ([]store.Secret, error) {
	return timedSecret(s, "ListSecrets", func(ss store.SecretStore) ([]store.Secret, error) { return ss.ListSecrets(ctx, owner, name) })
}

func (s *Store) UpdateSecret(ctx context.Context, sec store.Secret) error {
	_, err := timedSecret(s, "UpdateSecret", func(ss store.SecretStore) (struct{}, error) { return struct{}{}, ss.UpdateSecret(ctx, sec) })
	return err
}

func (s *Store) AddSecretVersion(ctx context.Context, v store.SecretVersion) error {
	_, err := timedSecret(s, "AddSecretVersion", func(ss store.SecretStore) (struct{}, error) { return struct{}{}, ss.AddSecretVersion(ctx, v) })
	return err
}

func (s *Store) GetSecretVersion(ctx context.Context, owner, name string, version int) (store.SecretVersion, error) {
	return timedSecret(s, "GetSecretVersion", func(ss store.SecretStore) (store.SecretVersion, error) {
		return ss.GetSecretVersion(ctx, owner, name, version)
	})
}

func (s *Store) ListSecretVersions(ctx context.Context, owner, name string) ([]store.SecretVersion, error) {
	return timedSecret(s, "ListSecretVersions", func(ss store.SecretStore) ([]store.SecretVersion, error) {
		return ss.ListSecretVersions(ctx, owner, name)
	})
}

func (s *Store) DestroySecret(ctx context.Context, owner, name string) error {
	_, err := timedSecret(s, "DestroySecret", func(ss store.SecretStore) (struct{}, error) { return struct{}{}, ss.DestroySecret(ctx, owner, name) })
	return err
}

func (s *Store) DestroyDueSecrets(ctx context.Context, now time.Time) (int, error) {
	return timedSecret(s, "DestroyDueSecrets", func(ss store.SecretStore) (int, error) { return ss.DestroyDueSecrets(ctx, now) })
}
