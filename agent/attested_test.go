package agent_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/agent"
	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/dataformat/keysource"
)

// AttestedKeys attests first: the expected enclave gets its data key by
// release and new data keys under the bound key; another enclave is refused
// with a RefusedError before any key is asked for.
func TestAttestedKeys(t *testing.T) {
	ctx := context.Background()
	w := setup(t, "sqlite")
	keys, err := agent.AttestedKeys(ctx, agent.Attested{Config: w.workload, AttestationDir: w.enclaveDir(t, goodMR, false),
		PolicyID: w.policyID, NewKeyID: w.keyID, Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := keys.OpenDataKey(ctx, w.wrapped, keysource.KeyRef{}); err != nil || pt != w.plaintext {
		t.Fatalf("released key: %v", err)
	}
	dk, err := keys.NewDataKey(ctx, keysource.Request{Bytes: 32})
	if err != nil || dk.Ref.ID != w.keyID {
		t.Fatalf("new data key: %+v, %v", dk.Ref, err)
	}
	// The data owner, a named decrypter, reads what the enclave wrote.
	e, _ := client.NewEHSM(w.owner)
	if pt, err := e.Decrypt(ctx, w.keyID, dk.Wrapped, "test"); err != nil || pt != dk.Plaintext {
		t.Fatalf("owner decrypts the output key: %v", err)
	}

	_, err = agent.AttestedKeys(ctx, agent.Attested{Config: w.workload, AttestationDir: w.enclaveDir(t, otherMR, false), PolicyID: w.policyID, Log: io.Discard})
	var refused *agent.RefusedError
	if !errors.As(err, &refused) || !strings.HasPrefix(err.Error(), "attestation: ") || !strings.Contains(err.Error(), "mr_enclave") {
		t.Fatalf("other enclave: %v", err)
	}

	for _, tc := range []struct {
		a    agent.Attested
		want string
	}{
		{agent.Attested{Config: w.workload, PolicyID: w.policyID, QuoteType: "occlum"}, `--quote-type "occlum": only gramine is supported`},
		{agent.Attested{Config: w.workload}, "--attest needs --kms, --policy-id"},
		{agent.Attested{Config: client.Config{AppID: "x"}, PolicyID: w.policyID}, "--attest needs --kms, --policy-id"},
	} {
		if _, err := agent.AttestedKeys(ctx, tc.a); err == nil || !strings.Contains(err.Error(), tc.want) || errors.As(err, &refused) {
			t.Errorf("%+v: %v, want %q", tc.a, err, tc.want)
		}
	}
}
