package store

import (
	"context"
	"time"
)

// AttestPolicy is an attestation policy stored for an app. Document is the
// quote/policy JSON; Origin says which API created it ("native", "ehsm" or
// "bigdl:<policyType>") so the legacy APIs can answer in their own shapes.
type AttestPolicy struct {
	ID        string
	Owner     string // app id; another app's policy is not found
	Origin    string
	Document  []byte
	CreatedAt time.Time
	// MAC authenticates the fields above (package attestation, under the
	// row MAC key); nil only for rows written before row MACs existed.
	MAC []byte
}

// AttestationStore is the persistent state of the Attestation Service.
type AttestationStore interface {
	CreatePolicy(ctx context.Context, p AttestPolicy) error
	// GetPolicy returns the policy id owned by owner (ErrNotFound when it
	// does not exist or belongs to another app).
	GetPolicy(ctx context.Context, owner, id string) (AttestPolicy, error)
	// LatestPolicy returns owner's most recently created policy.
	LatestPolicy(ctx context.Context, owner string) (AttestPolicy, error)
	// BackfillPolicyMACs sets the MAC of every policy row that has none to
	// sum(row), in one transaction, and returns how many it set.
	BackfillPolicyMACs(ctx context.Context, sum func(AttestPolicy) ([]byte, error)) (int, error)

	// SpendNonce records that owner used nonce, valid until expiresAt, and
	// reports false when it was recorded before (on any replica). The
	// record is durable before it returns and is kept until well after
	// expiresAt (PurgeRequests, as a replay record with that time).
	SpendNonce(ctx context.Context, nonce, owner string, expiresAt time.Time) (bool, error)
	// PurgeNonces forgets the stored nonces of releases before nonces were
	// stateless that expired before before (the table empties itself after
	// the upgrade).
	PurgeNonces(ctx context.Context, before time.Time) error
}

// WrappedMetaPrefix names meta entries whose value is wrapped under the root
// key (the re-wrap job moves them to the current term, with WrappedMetaAAD).
const WrappedMetaPrefix = "wrapped/"

// WrappedMetaAAD binds a root-wrapped meta value to its entry name.
func WrappedMetaAAD(name string) []byte {
	return []byte("ppml/wrapped-meta/v1\x00" + name)
}
