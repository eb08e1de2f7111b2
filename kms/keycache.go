package kms

import (
	"context"
	"time"

	"github.com/ppml-project/ppml/internal/boundedcache"
	"github.com/ppml-project/ppml/store"
)

// Key rows served from memory, and when they may not be.
//
// The rule (also in docs/security.md, "Key rows in memory"):
//
//  1. Only rows whose MAC verified are kept, each labelled with a key
//     generation read from the store before the row was read (so the row
//     is at least as new as that generation).
//  2. Every key row write through the store advances the generation in the
//     writing transaction (store.Store), so a change and its generation
//     commit together, whichever replica makes it.
//  3. A request may use a kept row only if it carries a generation read
//     after it arrived (the eHSM adapter reads it in the transaction that
//     commits the request's replay record, WithKeyGeneration) and the row's
//     label equals it. A key disabled, rotated or deleted on any replica
//     before the request arrived changed the generation, so the row is
//     read again. Requests without a generation (native and BigDL APIs,
//     key management) always read the row.
//  4. A row edited in the database, not through the service, advances
//     nothing: a replica keeps acting on the last row it verified, so the
//     edit never takes effect, and the edit is detected (key_integrity) at
//     the next read of the row, which comes at the latest keyCacheTTL later
//     (and at once on any key write anywhere, on eviction, on restart and
//     on every request that reads the row). A database writer who sets the
//     generation back holds replicas on an older verified row for at most
//     keyCacheTTL: less than restoring an older row with its old MAC
//     already allows (row MACs do not prevent rollback).
//
// Equality rather than "label not older" in 3 keeps a database restored
// from a backup (its generation lower than the labels) from serving rows
// newer than the database.
type cachedKey struct {
	key  store.Key
	gen  int64
	read time.Time // service clock
}

// keyCacheTTL bounds how long a kept row goes without being read again
// (rule 4).
const keyCacheTTL = time.Second

func newKeyCache() *boundedcache.Map[string, cachedKey] {
	return boundedcache.New[string, cachedKey](10000)
}

type keyGenerationCtx struct{}

// WithKeyGeneration marks ctx as a request for which the key generation gen
// was read from the store after the request arrived; key rows kept at gen
// may then serve it instead of a read. Adapters call it with the value
// store.Store.RecordRequest returned for the request.
func WithKeyGeneration(ctx context.Context, gen int64) context.Context {
	return context.WithValue(ctx, keyGenerationCtx{}, gen)
}

func keyGeneration(ctx context.Context) (int64, bool) {
	gen, ok := ctx.Value(keyGenerationCtx{}).(int64)
	return gen, ok
}

// keptKey returns the row of id kept at ctx's generation, if any.
func (s *Service) keptKey(ctx context.Context, id string) (store.Key, bool) {
	gen, ok := keyGeneration(ctx)
	if !ok {
		return store.Key{}, false
	}
	e, ok := s.keys.Get(id)
	if !ok || e.gen != gen || s.now().Sub(e.read) >= keyCacheTTL {
		return store.Key{}, false
	}
	return e.key, true
}

// keepKey keeps a row just read from the store whose MAC verified, labelled
// with ctx's generation (read before the row).
func (s *Service) keepKey(ctx context.Context, k store.Key) {
	if gen, ok := keyGeneration(ctx); ok {
		s.keys.Put(k.ID, cachedKey{key: k, gen: gen, read: s.now()})
	}
}
