// Package instrumented wraps a store.Store (and store.AttestationStore) so
// that every call is timed and reported to an Observer, e.g.
// metrics.(*Metrics).ObserveStore for ppml_store_operation_duration_seconds.
package instrumented

import (
	"context"
	"errors"
	"time"

	"github.com/ppml-project/ppml/store"
)

// Observer receives the operation name (the method), its error and its
// duration.
type Observer func(operation string, err error, d time.Duration)

// Store is the timed wrapper. Its methods follow store.Store and
// store.AttestationStore; the compile-time checks below fail when the
// interfaces change.
type Store struct {
	next    store.Store
	attest  store.AttestationStore // nil when next does not implement it
	observe Observer
}

var (
	_ store.Store            = (*Store)(nil)
	_ store.AttestationStore = (*Store)(nil)
)

// ErrNoAttestationStore is returned by the attestation methods when the
// wrapped store does not implement store.AttestationStore.
var ErrNoAttestationStore = errors.New("store does not implement the attestation store")

// New wraps next; observe may be nil (nothing recorded).
func New(next store.Store, observe Observer) *Store {
	s := &Store{next: next, observe: observe}
	s.attest, _ = next.(store.AttestationStore)
	return s
}

// Unwrap returns the wrapped store.
func (s *Store) Unwrap() store.Store { return s.next }

func (s *Store) done(op string, start time.Time, err error) {
	if s.observe != nil {
		s.observe(op, err, time.Since(start))
	}
}

// Close closes the wrapped store (not timed).
func (s *Store) Close() error { return s.next.Close() }

// GetMeta times the wrapped call.
func (s *Store) GetMeta(ctx context.Context, name string) ([]byte, error) {
	start := time.Now()
	v, err := s.next.GetMeta(ctx, name)
	s.done("GetMeta", start, err)
	return v, err
}

// PutMetaIfAbsent times the wrapped call.
func (s *Store) PutMetaIfAbsent(ctx context.Context, name string, value []byte) (bool, error) {
	start := time.Now()
	v, err := s.next.PutMetaIfAbsent(ctx, name, value)
	s.done("PutMetaIfAbsent", start, err)
	return v, err
}

// CreateApp times the wrapped call.
func (s *Store) CreateApp(ctx context.Context, a store.App) error {
	start := time.Now()
	err := s.next.CreateApp(ctx, a)
	s.done("CreateApp", start, err)
	return err
}

// GetApp times the wrapped call.
func (s *Store) GetApp(ctx context.Context, id string) (store.App, error) {
	start := time.Now()
	v, err := s.next.GetApp(ctx, id)
	s.done("GetApp", start, err)
	return v, err
}

// CreateKey times the wrapped call.
func (s *Store) CreateKey(ctx context.Context, k store.Key, v store.KeyVersion) error {
	start := time.Now()
	err := s.next.CreateKey(ctx, k, v)
	s.done("CreateKey", start, err)
	return err
}

// GetKey times the wrapped call.
func (s *Store) GetKey(ctx context.Context, id string) (store.Key, error) {
	start := time.Now()
	v, err := s.next.GetKey(ctx, id)
	s.done("GetKey", start, err)
	return v, err
}

// GetKeyByName times the wrapped call.
func (s *Store) GetKeyByName(ctx context.Context, owner, name string) (store.Key, error) {
	start := time.Now()
	v, err := s.next.GetKeyByName(ctx, owner, name)
	s.done("GetKeyByName", start, err)
	return v, err
}

// ListKeys times the wrapped call.
func (s *Store) ListKeys(ctx context.Context, owner string) ([]store.Key, error) {
	start := time.Now()
	v, err := s.next.ListKeys(ctx, owner)
	s.done("ListKeys", start, err)
	return v, err
}

// GetKeyVersion times the wrapped call.
func (s *Store) GetKeyVersion(ctx context.Context, id string, version int) (store.KeyVersion, error) {
	start := time.Now()
	v, err := s.next.GetKeyVersion(ctx, id, version)
	s.done("GetKeyVersion", start, err)
	return v, err
}

// AddKeyVersion times the wrapped call.
func (s *Store) AddKeyVersion(ctx context.Context, v store.KeyVersion, oldMAC, newMAC []byte) error {
	start := time.Now()
	err := s.next.AddKeyVersion(ctx, v, oldMAC, newMAC)
	s.done("AddKeyVersion", start, err)
	return err
}

// SetKeyState times the wrapped call.
func (s *Store) SetKeyState(ctx context.Context, id, state string, deletionAt time.Time, oldMAC, newMAC []byte) error {
	start := time.Now()
	err := s.next.SetKeyState(ctx, id, state, deletionAt, oldMAC, newMAC)
	s.done("SetKeyState", start, err)
	return err
}

// DestroyDueKeys times the wrapped call.
func (s *Store) DestroyDueKeys(ctx context.Context, now time.Time) ([]string, error) {
	start := time.Now()
	v, err := s.next.DestroyDueKeys(ctx, now)
	s.done("DestroyDueKeys", start, err)
	return v, err
}

// CountKeys times the wrapped call.
func (s *Store) CountKeys(ctx context.Context) (map[string]int, error) {
	start := time.Now()
	v, err := s.next.CountKeys(ctx)
	s.done("CountKeys", start, err)
	return v, err
}

// CreateDataKey times the wrapped call.
func (s *Store) CreateDataKey(ctx context.Context, d store.DataKey) error {
	start := time.Now()
	err := s.next.CreateDataKey(ctx, d)
	s.done("CreateDataKey", start, err)
	return err
}

// GetDataKey times the wrapped call.
func (s *Store) GetDataKey(ctx context.Context, owner, name string) (store.DataKey, error) {
	start := time.Now()
	v, err := s.next.GetDataKey(ctx, owner, name)
	s.done("GetDataKey", start, err)
	return v, err
}

// RecordRequest times the wrapped call.
func (s *Store) RecordRequest(ctx context.Context, app, nonce, timestamp string, now, notBefore time.Time) (bool, int64, error) {
	start := time.Now()
	v, gen, err := s.next.RecordRequest(ctx, app, nonce, timestamp, now, notBefore)
	s.done("RecordRequest", start, err)
	return v, gen, err
}

// PurgeRequests times the wrapped call.
func (s *Store) PurgeRequests(ctx context.Context, before time.Time) error {
	start := time.Now()
	err := s.next.PurgeRequests(ctx, before)
	s.done("PurgeRequests", start, err)
	return err
}

// LoadKeyring times the wrapped call.
func (s *Store) LoadKeyring(ctx context.Context) (store.Keyring, error) {
	start := time.Now()
	v, err := s.next.LoadKeyring(ctx)
	s.done("LoadKeyring", start, err)
	return v, err
}

// InitKeyring times the wrapped call.
func (s *Store) InitKeyring(ctx context.Context, check []byte, t store.RootTerm, unsealKey []byte) (bool, error) {
	start := time.Now()
	v, err := s.next.InitKeyring(ctx, check, t, unsealKey)
	s.done("InitKeyring", start, err)
	return v, err
}

// AddTerm times the wrapped call.
func (s *Store) AddTerm(ctx context.Context, t store.RootTerm, check, unsealKey []byte) error {
	start := time.Now()
	err := s.next.AddTerm(ctx, t, check, unsealKey)
	s.done("AddTerm", start, err)
	return err
}

// PrepareRekey times the wrapped call.
func (s *Store) PrepareRekey(ctx context.Context, p store.PendingRekey) error {
	start := time.Now()
	err := s.next.PrepareRekey(ctx, p)
	s.done("PrepareRekey", start, err)
	return err
}

// CommitRekey times the wrapped call.
func (s *Store) CommitRekey(ctx context.Context, id string, oldCheck, newCheck []byte, current int, byUnseal map[int][]byte, unsealKey []byte) (bool, error) {
	start := time.Now()
	v, err := s.next.CommitRekey(ctx, id, oldCheck, newCheck, current, byUnseal, unsealKey)
	s.done("CommitRekey", start, err)
	return v, err
}

// ListRootWrapped times the wrapped call.
func (s *Store) ListRootWrapped(ctx context.Context, kind, after string, limit int) ([]store.RootWrapped, error) {
	start := time.Now()
	v, err := s.next.ListRootWrapped(ctx, kind, after, limit)
	s.done("ListRootWrapped", start, err)
	return v, err
}

// ReplaceRootWrapped times the wrapped call.
func (s *Store) ReplaceRootWrapped(ctx context.Context, it store.RootWrapped, blob []byte) (bool, error) {
	start := time.Now()
	v, err := s.next.ReplaceRootWrapped(ctx, it, blob)
	s.done("ReplaceRootWrapped", start, err)
	return v, err
}

// Ping times the wrapped call.
func (s *Store) Ping(ctx context.Context) error {
	start := time.Now()
	err := s.next.Ping(ctx)
	s.done("Ping", start, err)
	return err
}

// CreatePolicy times the wrapped call.
func (s *Store) CreatePolicy(ctx context.Context, p store.AttestPolicy) error {
	if s.attest == nil {
		return ErrNoAttestationStore
	}
	start := time.Now()
	err := s.attest.CreatePolicy(ctx, p)
	s.done("CreatePolicy", start, err)
	return err
}

// GetPolicy times the wrapped call.
func (s *Store) GetPolicy(ctx context.Context, owner, id string) (store.AttestPolicy, error) {
	if s.attest == nil {
		return store.AttestPolicy{}, ErrNoAttestationStore
	}
	start := time.Now()
	v, err := s.attest.GetPolicy(ctx, owner, id)
	s.done("GetPolicy", start, err)
	return v, err
}

// LatestPolicy times the wrapped call.
func (s *Store) LatestPolicy(ctx context.Context, owner string) (store.AttestPolicy, error) {
	if s.attest == nil {
		return store.AttestPolicy{}, ErrNoAttestationStore
	}
	start := time.Now()
	v, err := s.attest.LatestPolicy(ctx, owner)
	s.done("LatestPolicy", start, err)
	return v, err
}

// SpendNonce times the wrapped call.
func (s *Store) SpendNonce(ctx context.Context, nonce, owner string, expiresAt time.Time) (bool, error) {
	if s.attest == nil {
		return false, ErrNoAttestationStore
	}
	start := time.Now()
	v, err := s.attest.SpendNonce(ctx, nonce, owner, expiresAt)
	s.done("SpendNonce", start, err)
	return v, err
}

// PurgeNonces times the wrapped call.
func (s *Store) PurgeNonces(ctx context.Context, before time.Time) error {
	if s.attest == nil {
		return ErrNoAttestationStore
	}
	start := time.Now()
	err := s.attest.PurgeNonces(ctx, before)
	s.done("PurgeNonces", start, err)
	return err
}

// BackfillKeyMACs times the wrapped call.
func (s *Store) BackfillKeyMACs(ctx context.Context, sum func(store.Key) ([]byte, error)) (int, error) {
	start := time.Now()
	n, err := s.next.BackfillKeyMACs(ctx, sum)
	s.done("BackfillKeyMACs", start, err)
	return n, err
}

// BackfillPolicyMACs times the wrapped call.
func (s *Store) BackfillPolicyMACs(ctx context.Context, sum func(store.AttestPolicy) ([]byte, error)) (int, error) {
	if s.attest == nil {
		return 0, ErrNoAttestationStore
	}
	start := time.Now()
	n, err := s.attest.BackfillPolicyMACs(ctx, sum)
	s.done("BackfillPolicyMACs", start, err)
	return n, err
}
