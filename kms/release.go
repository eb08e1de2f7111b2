package kms

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"slices"

	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/store"
	"github.com/ppml-project/ppml/wire/release"
)

// Attested key release. A key bound to attestation policies (ReleasePolicies)
// never reveals plaintext to an app id and API key alone: Decrypt,
// ExportDataKey, AsymmetricDecrypt and BigDL's GET /dataKey are refused,
// except to the apps its owner named as Decrypters (data owners reading
// results). Its plaintext reaches a workload only through Release: with a
// fresh attestation token whose claims satisfy one of the bound policies,
// HPKE-encrypted to the ephemeral public key the workload committed to in
// the quote's runtime data, so it never crosses the network in the clear.

// ReleaseProof is what a release request presents to prove its workload:
// either Token, from an earlier attestation, or the evidence itself (Quote
// and the Nonce it commits to, evaluated against PolicyID), attested within
// the release request: one round trip and no token signature and check
// less for a workload that only needs its keys.
type ReleaseProof struct {
	Token string

	Quote, Nonce []byte
	PolicyID     string // "" = the key's one release policy
	IssueToken   bool   // evidence only: also issue a token for later releases
	Remote       string // for the attestation's audit record
}

func (p ReleaseProof) evidence() bool { return len(p.Quote) > 0 || len(p.Nonce) > 0 }

// ReleaseGrant is what the authorizer accepted.
type ReleaseGrant struct {
	RuntimeDataSHA256 []byte // the runtime data the attestation committed to
	Token             string // evidence with IssueToken: a token for later releases
	Claims            any    // evidence: the attestation's claims, for the answer
}

// ReleaseAuthorizer decides whether the app callerAppID may have a key
// released: it verifies the proof's token, or attests its evidence with
// runtimeData, and checks that it was made under one of policyIDs (owned by
// owner). The attestation service implements it; it is injected to keep
// kms free of attestation imports.
type ReleaseAuthorizer interface {
	AuthorizeRelease(ctx context.Context, proof ReleaseProof, runtimeData []byte, callerAppID, owner string, policyIDs []string) (*ReleaseGrant, error)
	// CheckPolicies reports an error unless every id is a policy of owner.
	CheckPolicies(ctx context.Context, owner string, policyIDs []string) error
}

// SetReleaseAuthorizer installs the attestation check used by Release.
func (s *Service) SetReleaseAuthorizer(a ReleaseAuthorizer) { s.release = a }

func bound(k store.Key) bool { return len(k.ReleasePolicies) > 0 }

func attestationRequired(k store.Key) error {
	return fault.Errorf(fault.Forbidden, "attestation_required",
		"key %s is bound to attestation policies: its plaintext is released only to an attested workload (ppml attest, or POST /v1/keys/%s/release with a token from /v1/attestation/verify or the attestation itself), or to the apps its owner named as decrypters", k.ID, k.ID)
}

// grantedKey loads a key for the owner or for an app the owner named as
// decrypter (data owners make data keys and read results with it).
func (s *Service) grantedKey(ctx context.Context, c Caller, id string) (store.Key, error) {
	if err := s.requireUnsealed(); err != nil {
		return store.Key{}, err
	}
	// One read of the key row serves both the grant and the checks.
	as := c
	k, kept, err := s.loadKey(ctx, id)
	if err == nil && k.Owner != c.ID && slices.Contains(k.Decrypters, c.ID) {
		as.ID = k.Owner
	}
	if k, err = s.checkOwned(ctx, as, id, k, kept, err); err != nil {
		return k, err
	}
	return checkUsable(k)
}

// revealingKey loads a key for an operation that reveals plaintext: for a
// bound key only the named decrypters may.
func (s *Service) revealingKey(ctx context.Context, c Caller, id string) (store.Key, error) {
	k, err := s.grantedKey(ctx, c, id)
	if err != nil {
		return k, err
	}
	if bound(k) && !slices.Contains(k.Decrypters, c.ID) {
		return k, attestationRequired(k)
	}
	return k, nil
}

// Release decrypts a data key ciphertext made under a bound key and returns
// it HPKE-sealed to the X25519 public key in runtimeData, after the proof
// showed that the caller's workload runs code a bound policy accepts.
func (s *Service) Release(ctx context.Context, c Caller, keyID string, ciphertext, aad []byte, proof ReleaseProof, runtimeData []byte) (sealed []byte, grant *ReleaseGrant, err error) {
	defer func() { err = s.record(c, "ReleaseKey", keyID, err) }()
	if err := s.requireUnsealed(); err != nil {
		return nil, nil, err
	}
	// Only the owner releases (the proof must come from one of its own
	// policies): anyone else learns nothing, not even that the key exists.
	k, err := s.usableKey(ctx, c, keyID)
	if err != nil {
		return nil, nil, err
	}
	if !bound(k) {
		return nil, nil, fault.Errorf(fault.Invalid, "key_not_bound", "key %s is not bound to an attestation policy; nothing to release (its owner decrypts with Decrypt)", keyID)
	}
	if s.release == nil {
		return nil, nil, fault.Errorf(fault.Unsupported, "no_attestation", "this server has no attestation service to check release tokens")
	}
	switch {
	case proof.Token != "" && proof.evidence():
		return nil, nil, fault.Errorf(fault.Invalid, "token_and_evidence", "send either a token or attestation evidence (quote and nonce), not both")
	case proof.Token == "" && !proof.evidence():
		return nil, nil, fault.Errorf(fault.Unauthenticated, "missing_token", "an attestation token is required (from POST /v1/attestation/verify), or attestation evidence: quote and nonce")
	}
	pub, err := release.PublicKey(runtimeData)
	if err != nil {
		return nil, nil, fault.Errorf(fault.Invalid, "bad_release_key", "runtime_data must be the workload's 32-byte X25519 public key for HPKE (RFC 9180, DHKEM(X25519))")
	}
	grant, err = s.release.AuthorizeRelease(ctx, proof, runtimeData, c.ID, k.Owner, k.ReleasePolicies)
	if err != nil {
		return nil, nil, err
	}
	got := sha256.Sum256(runtimeData)
	if subtle.ConstantTimeCompare(got[:], grant.RuntimeDataSHA256) != 1 {
		return nil, nil, fault.Errorf(fault.Forbidden, "runtime_data_mismatch", "the runtime_data sent is not the one the attested quote committed to (SHA-256 differs from the token's runtime_data_sha256)")
	}
	pt, err := s.open(ctx, k, ciphertext, aad)
	if err != nil {
		return nil, nil, err
	}
	sealed, err = release.Seal(pub, keyID, pt)
	if err != nil {
		return nil, nil, s.internal("ReleaseKey", err)
	}
	return sealed, grant, nil
}
