package attestation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/kms"
)

// The attestation service is the kms.ReleaseAuthorizer: a key bound to
// policies is released to a caller whose token (issued here, in process)
// was issued to that same app under one of those policies, or whose
// evidence, attested here within the release request, satisfies one of
// them. The policy itself is evaluated against the full verification
// result, when the token is issued or when the evidence is attested.

var _ kms.ReleaseAuthorizer = (*Service)(nil)

func forbidden(code, format string, a ...any) error {
	return &fault.Error{Kind: fault.Forbidden, Code: code, Msg: fmt.Sprintf(format, a...)}
}

// AuthorizeRelease implements kms.ReleaseAuthorizer.
func (s *Service) AuthorizeRelease(ctx context.Context, proof kms.ReleaseProof, runtimeData []byte, callerAppID, owner string, policyIDs []string) (*kms.ReleaseGrant, error) {
	if proof.Token == "" {
		return s.attestForRelease(ctx, proof, runtimeData, callerAppID, policyIDs)
	}
	c, err := s.VerifyToken(ctx, proof.Token)
	if err != nil {
		return nil, err
	}
	if c.AppID != callerAppID || c.Subject != callerAppID {
		return nil, forbidden("token_other_app", "the attestation token was issued to another app (%s), not to the caller", c.AppID)
	}
	if !slices.Contains(policyIDs, c.PolicyID) {
		return nil, forbidden("policy_not_bound", "the token was issued under policy %q, which is not one the key is bound to %v: attest with one of them", c.PolicyID, policyIDs)
	}
	if c.Simulated && !s.AllowSimulation() {
		return nil, forbidden("simulated", "the token is from a simulated TEE and this server does not allow simulation")
	}
	sum, err := hex.DecodeString(c.RuntimeDataSHA256)
	if err != nil || len(sum) != 32 {
		return nil, forbidden("no_runtime_data", "the token commits to no runtime data: attest with runtime_data = your X25519 public key")
	}
	return &kms.ReleaseGrant{RuntimeDataSHA256: sum}, nil
}

// attestForRelease runs the native flow on the evidence of a release
// request (spending its nonce, audited like POST /v1/attestation/verify)
// under the policy named, which must be one the key is bound to.
func (s *Service) attestForRelease(ctx context.Context, proof kms.ReleaseProof, runtimeData []byte, callerAppID string, policyIDs []string) (*kms.ReleaseGrant, error) {
	policyID := proof.PolicyID
	if policyID == "" {
		if len(policyIDs) != 1 {
			return nil, fault.Invalidf("missing_policy_id", "the key is bound to %d policies %v: name the one to attest under in policy_id", len(policyIDs), policyIDs)
		}
		policyID = policyIDs[0]
	}
	// Before the nonce is spent: a request for the wrong policy costs nothing.
	if !slices.Contains(policyIDs, policyID) {
		return nil, forbidden("policy_not_bound", "policy %q is not one the key is bound to %v: attest with one of them", policyID, policyIDs)
	}
	att, err := s.Attest(ctx, Request{AppID: callerAppID, Quote: proof.Quote, Nonce: proof.Nonce, RuntimeData: runtimeData,
		PolicyID: policyID, API: "native", Remote: proof.Remote, NoToken: !proof.IssueToken})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(runtimeData)
	return &kms.ReleaseGrant{RuntimeDataSHA256: sum[:], Token: att.Token, Claims: att.Claims}, nil
}

// CheckPolicies implements kms.ReleaseAuthorizer.
func (s *Service) CheckPolicies(ctx context.Context, owner string, policyIDs []string) error {
	for _, id := range policyIDs {
		sp, err := s.Policy(ctx, owner, id)
		if err == nil {
			if perr := sp.Policy.PinsMeasurement(); perr != nil {
				return &fault.Error{Kind: fault.Invalid, Code: "policy_pins_nothing",
					Msg: fmt.Sprintf("release policy %q cannot bind a key: %v", id, perr)}
			}
		}
		if err != nil {
			if fault.KindOf(err) != fault.NotFound {
				return err // sealed, integrity, store errors: not the caller's mistake
			}
			return fault.Invalidf("unknown_release_policy", "release policy %q is not a policy of this app: create it first (ppml policy create)", id)
		}
	}
	return nil
}
