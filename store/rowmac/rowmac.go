// Package rowmac authenticates the database rows that carry security
// decisions (a key's owner, spec, state, release policies and decrypters;
// attestation policy documents) with HMAC-SHA256 under one random key that
// is itself stored wrapped under the root key (meta entry KeyMeta, re-wrapped
// with every root key rotation). A row edited directly in the database no
// longer matches its MAC, and the services refuse it on read.
//
// Wrapped key material is already bound to its key's id, version, owner and
// spec by AEAD associated data; the MAC covers the mutable fields the AAD
// cannot (a root-wrapped blob is not rewritten when a key is disabled).
package rowmac

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/ppml-project/ppml/store"
)

// KeyMeta is the meta entry holding the root-wrapped MAC key; a meta entry
// BackfilledMetaPrefix+table records that the rows of table written before
// row MACs existed were authenticated (once, on the first start after the
// upgrade).
const (
	KeyMeta              = store.WrappedMetaPrefix + "row-mac-key"
	BackfilledMetaPrefix = "row-mac-backfilled/v1/"
)

// Wrapper wraps and unwraps under the root key (rootkey.Keyring).
type Wrapper interface {
	// Seal wraps plaintext and stores it with put, wrapping again when the
	// store moved to a newer root key term meanwhile.
	Seal(ctx context.Context, plaintext, aad []byte, put func(blob []byte) error) error
	Unwrap(blob, aad []byte) ([]byte, error)
}

// Meta is the part of the store rowmac needs.
type Meta interface {
	GetMeta(ctx context.Context, name string) ([]byte, error)
	PutMetaIfAbsent(ctx context.Context, name string, value []byte) (bool, error)
}

// Keeper computes and checks row MACs.
type Keeper struct {
	root Wrapper
	meta Meta

	table    string
	backfill Backfill

	mu  sync.Mutex
	key []byte
}

// Backfill authenticates existing rows with sum.
type Backfill func(ctx context.Context, sum SumFunc) error

// SumFunc computes a row MAC (see Keeper.Sum).
type SumFunc func(domain string, fields ...string) []byte

// New returns the Keeper of one table; the key is loaded (or created) on
// first use, after the root key is available. Before the first MAC is
// computed on a database whose table was not yet backfilled (the first start
// after the upgrade to row MACs), backfill authenticates the existing rows,
// trusting them as they are; rows without a MAC are refused afterwards.
func New(root Wrapper, meta Meta, table string, backfill Backfill) *Keeper {
	return &Keeper{root: root, meta: meta, table: table, backfill: backfill}
}

func (k *Keeper) load(ctx context.Context) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.key != nil {
		return k.key, nil
	}
	aad := store.WrappedMetaAAD(KeyMeta)
	blob, err := k.meta.GetMeta(ctx, KeyMeta)
	if errors.Is(err, store.ErrNotFound) {
		fresh := make([]byte, 32)
		if _, err := rand.Read(fresh); err != nil {
			return nil, err
		}
		if err := k.root.Seal(ctx, fresh, aad, func(wrapped []byte) error {
			_, err := k.meta.PutMetaIfAbsent(ctx, KeyMeta, wrapped)
			return err
		}); err != nil {
			return nil, err
		}
		blob, err = k.meta.GetMeta(ctx, KeyMeta) // another replica may have won
		if err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	key, err := k.root.Unwrap(blob, aad)
	if err != nil {
		return nil, err
	}
	marker := BackfilledMetaPrefix + k.table
	if _, err := k.meta.GetMeta(ctx, marker); errors.Is(err, store.ErrNotFound) {
		// Under the lock: nothing in this process computes a MAC before the
		// existing rows have theirs. A backfill only touches rows without a
		// MAC, so replicas racing here agree.
		sum := func(domain string, fields ...string) []byte { return sumWith(key, domain, fields) }
		if k.backfill != nil {
			if err := k.backfill(ctx, sum); err != nil {
				return nil, fmt.Errorf("authenticating the %s rows written before row MACs: %w", k.table, err)
			}
		}
		if _, err := k.meta.PutMetaIfAbsent(ctx, marker, []byte("done")); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	k.key = key
	return key, nil
}

// Ready loads the key, backfilling the table first when needed. A row read
// without a MAC before Ready may have one now: read it again.
func (k *Keeper) Ready(ctx context.Context) error {
	_, err := k.load(ctx)
	return err
}

// sumWith computes the MAC of a row with key.
func sumWith(key []byte, domain string, fields []string) []byte {
	m := hmac.New(sha256.New, key)
	var n [8]byte
	write := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		m.Write(n[:])
		m.Write([]byte(s))
	}
	write("ppml/row-mac/v1")
	write(domain)
	for _, f := range fields {
		write(f)
	}
	return m.Sum(nil)
}

// Sum returns the MAC of the row of kind domain with these fields (each
// length-prefixed, so no two field lists collide).
func (k *Keeper) Sum(ctx context.Context, domain string, fields ...string) ([]byte, error) {
	k.mu.Lock()
	key := k.key
	k.mu.Unlock()
	if key == nil {
		var err error
		if key, err = k.load(ctx); err != nil {
			return nil, err
		}
	}
	return sumWith(key, domain, fields), nil
}

// Valid reports whether mac authenticates the fields; a nil mac never does.
func (k *Keeper) Valid(ctx context.Context, mac []byte, domain string, fields ...string) (bool, error) {
	want, err := k.Sum(ctx, domain, fields...)
	if err != nil {
		return false, err
	}
	return len(mac) > 0 && hmac.Equal(mac, want), nil
}
