package store

import (
	"context"
	"encoding/binary"
	"errors"
	"time"
)

// The root keyring (see kms/rootkey): every root-wrapped blob starts with
// the 4-byte big-endian term of the root key that sealed it. The store holds
// every term's key and the number of the current term, and refuses to commit
// a blob sealed under any other term (ErrStaleTerm), in the transaction that
// writes it: a replica that has not yet learnt of a rotation reloads the
// keyring and wraps again, so after a rotation no new row uses an old term
// and a finished re-wrap stays finished.

// TermHeaderSize is the size of the term prefix of a root-wrapped blob.
const TermHeaderSize = 4

// ErrStaleTerm: a blob is sealed under a term other than the store's
// current one.
var ErrStaleTerm = errors.New("wrapped under a root key term that is not the store's current term")

// BlobTerm returns the term a root-wrapped blob was sealed under.
func BlobTerm(blob []byte) (int, bool) {
	if len(blob) < TermHeaderSize {
		return 0, false
	}
	return int(binary.BigEndian.Uint32(blob)), true
}

// WithTerm prefixes sealed with its term.
func WithTerm(term int, sealed []byte) []byte {
	out := make([]byte, TermHeaderSize, TermHeaderSize+len(sealed))
	binary.BigEndian.PutUint32(out, uint32(term))
	return append(out, sealed...)
}

// RootTerm is one term of the root keyring.
type RootTerm struct {
	Term int
	// ByUnseal is the term key wrapped under the unseal key (the key the
	// shares or the root key file give); rewritten by a rekey.
	ByUnseal []byte
	// ByPrevious is the term key wrapped under the previous term's key (nil
	// for term 1), so a replica that knows term N learns N+1 without the
	// unseal key, even after a rekey elsewhere.
	ByPrevious []byte
	CreatedAt  time.Time
}

// Keyring is the root keyring as stored.
type Keyring struct {
	Terms   []RootTerm // ascending
	Current int        // 0: not initialised
	// Check is the unseal key check value (a known plaintext sealed under
	// the unseal key); UnsealKey is the unseal key wrapped under the current
	// term (a term-prefixed blob), so replicas learn a rekey.
	Check, UnsealKey []byte
	// Pending is a prepared, uncommitted rekey (nil if none).
	Pending *PendingRekey
}

// PendingRekey is a rekey whose new shares were handed out but not yet
// confirmed as written: the new unseal key, wrapped under the current term.
type PendingRekey struct {
	ID        string
	UnsealKey []byte
}

// KeyringStore keeps the root keyring. Every method is one transaction.
type KeyringStore interface {
	LoadKeyring(ctx context.Context) (Keyring, error)
	// InitKeyring stores term 1 (t.Term must be 1), the check value and the
	// wrapped unseal key, unless a keyring exists (then it reports false).
	// An existing check value must equal check (ErrConflict otherwise).
	InitKeyring(ctx context.Context, check []byte, t RootTerm, unsealKey []byte) (bool, error)
	// AddTerm appends t as the new current term if the current term is
	// still t.Term-1 and the check value still check (ErrConflict
	// otherwise), and replaces the wrapped unseal key.
	AddTerm(ctx context.Context, t RootTerm, check, unsealKey []byte) error
	// PrepareRekey records a pending rekey (replacing any other).
	PrepareRekey(ctx context.Context, p PendingRekey) error
	// CommitRekey installs a new unseal key: if the pending rekey is still
	// id, the check value still oldCheck and the current term still current
	// with exactly len(byUnseal) terms, it replaces every term's ByUnseal,
	// the check value and the wrapped unseal key, and clears the pending
	// rekey (ErrConflict otherwise). With done, an id already committed
	// reports done = true and changes nothing.
	CommitRekey(ctx context.Context, id string, oldCheck, newCheck []byte, current int, byUnseal map[int][]byte, unsealKey []byte) (done bool, err error)

	// ListRootWrapped returns up to limit root-wrapped rows of kind ("app",
	// "key_version", "meta") after the cursor (from a previous row's
	// Cursor; "" for the start), in a stable order.
	ListRootWrapped(ctx context.Context, kind, after string, limit int) ([]RootWrapped, error)
	// ReplaceRootWrapped swaps it.Blob for blob (which must be under the
	// current term) if the row still holds it.Blob; it reports whether it did.
	ReplaceRootWrapped(ctx context.Context, it RootWrapped, blob []byte) (bool, error)
}

// Cursor is the position of a row in ListRootWrapped order.
func (r RootWrapped) Cursor() string {
	if r.Kind == "secret" {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(r.Version))
		return r.Owner + "\x00" + r.ID + "\x00" + string(b[:])
	}
	if r.Kind == "key_version" {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(r.Version))
		return r.ID + "\x00" + string(b[:])
	}
	return r.ID
}
