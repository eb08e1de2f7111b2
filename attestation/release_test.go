package attestation_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/attestation"
	"github.com/ppml-project/ppml/kms"
	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/policy"
)

// Release authorization in process: the token's app, policy and runtime
// data, and evidence under a bound policy (./agent tests it end to end).
func TestAuthorizeRelease(t *testing.T) {
	f := newFixture(t, true, "")
	ctx := context.Background()
	zero := strings.Repeat("00", 32) // the simulated enclave's MRENCLAVE
	bound, err := f.as.CreatePolicy(ctx, f.appID, "native", &policy.Policy{AllowSimulated: true, MREnclave: []string{zero}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := f.as.CreatePolicy(ctx, f.appID, "native", &policy.Policy{AllowSimulated: true, MREnclave: []string{zero}})
	if err != nil {
		t.Fatal(err)
	}
	rt := []byte("x25519 public key")
	sum := sha256.Sum256(rt)
	evidence := func(policyID string) kms.ReleaseProof {
		n := f.nonce(t)
		return kms.ReleaseProof{Quote: f.quote(t, abi.SGX, n, rt, false), Nonce: n, PolicyID: policyID, IssueToken: true}
	}
	g, err := f.as.AuthorizeRelease(ctx, evidence(""), rt, f.appID, f.appID, []string{bound.ID})
	if err != nil || !bytes.Equal(g.RuntimeDataSHA256, sum[:]) || g.Token == "" || g.Claims.(*attestation.Claims).PolicyID != bound.ID {
		t.Fatalf("evidence under the one bound policy: %+v %v", g, err)
	}
	tok := g.Token
	_, err = f.as.AuthorizeRelease(ctx, evidence(""), rt, f.appID, f.appID, []string{bound.ID, other.ID})
	wantCode(t, "evidence without policy_id, two bound policies", err, "missing_policy_id")
	p := evidence(other.ID)
	_, err = f.as.AuthorizeRelease(ctx, p, rt, f.appID, f.appID, []string{bound.ID})
	wantCode(t, "evidence under a policy the key is not bound to", err, "policy_not_bound")
	// That refusal came before the nonce was spent.
	if _, err := f.as.AuthorizeRelease(ctx, kms.ReleaseProof{Quote: p.Quote, Nonce: p.Nonce, PolicyID: bound.ID}, rt, f.appID, f.appID, []string{bound.ID}); err != nil {
		t.Fatalf("the same evidence under the bound policy: %v", err)
	}

	g, err = f.as.AuthorizeRelease(ctx, kms.ReleaseProof{Token: tok}, rt, f.appID, f.appID, []string{other.ID, bound.ID})
	if err != nil || !bytes.Equal(g.RuntimeDataSHA256, sum[:]) {
		t.Fatalf("token: %+v %v", g, err)
	}
	_, err = f.as.AuthorizeRelease(ctx, kms.ReleaseProof{Token: tok}, rt, "another-app", f.appID, []string{bound.ID})
	wantCode(t, "token of another app", err, "token_other_app")
	_, err = f.as.AuthorizeRelease(ctx, kms.ReleaseProof{Token: tok}, rt, f.appID, f.appID, []string{other.ID})
	wantCode(t, "token under another policy", err, "policy_not_bound")
	_, err = f.as.AuthorizeRelease(ctx, kms.ReleaseProof{Token: tok + "x"}, rt, f.appID, f.appID, []string{bound.ID})
	wantCode(t, "damaged token", err, "invalid_token")
}

func TestCheckPolicies(t *testing.T) {
	f := newFixture(t, true, "")
	ctx := context.Background()
	pins, err := f.as.CreatePolicy(ctx, f.appID, "native", &policy.Policy{MREnclave: []string{strings.Repeat("ab", 32)}})
	if err != nil {
		t.Fatal(err)
	}
	loose, err := f.as.CreatePolicy(ctx, f.appID, "native", &policy.Policy{AllowSimulated: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.as.CheckPolicies(ctx, f.appID, []string{pins.ID}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "a policy pinning no measurement", f.as.CheckPolicies(ctx, f.appID, []string{pins.ID, loose.ID}), "policy_pins_nothing")
	wantCode(t, "another app's policy", f.as.CheckPolicies(ctx, "another-app", []string{pins.ID}), "unknown_release_policy")
	wantCode(t, "an unknown policy", f.as.CheckPolicies(ctx, f.appID, []string{pins.ID, "nope"}), "unknown_release_policy")
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if codeOf(err) != code {
		t.Errorf("%s: %v, want %s", what, err, code)
	}
}
