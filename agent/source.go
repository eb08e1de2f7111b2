package agent

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/client/kmskeys"
	"github.com/ppml-project/ppml/dataformat/keysource"
	"github.com/ppml-project/ppml/enclave"
)

// ReleaseSource is the keysource.Source of an attested workload: it opens
// data keys through attested release (the session attests once, again only
// when its token nears expiry) and makes new data keys for its outputs with
// New (GenerateDataKey under the bound key is allowed without attestation).
type ReleaseSource struct {
	Session *Session
	New     keysource.Source // nil: the workload writes nothing encrypted
	AAD     []byte           // AAD the data keys were wrapped with (default BigDL's "test")
}

var _ keysource.Source = (*ReleaseSource)(nil)

// NewDataKey implements keysource.Source.
func (r *ReleaseSource) NewDataKey(ctx context.Context, req keysource.Request) (keysource.DataKey, error) {
	if r.New == nil {
		return keysource.DataKey{}, errors.New("no key for new data keys: give the KMS key id for outputs")
	}
	return r.New.NewDataKey(ctx, req)
}

// OpenDataKey implements keysource.Source.
func (r *ReleaseSource) OpenDataKey(ctx context.Context, wrapped string, ref keysource.KeyRef) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(wrapped)
	if err != nil || kmskeys.KeyIDOf(wrapped) == "" {
		return "", fmt.Errorf("the data key %.20s... was not wrapped by this KMS, so it cannot be released to the enclave", wrapped)
	}
	aad := r.AAD
	if aad == nil {
		aad, _ = base64.StdEncoding.DecodeString(kmskeys.BigDLAAD)
	}
	pt, err := r.Session.Release(ctx, raw, aad)
	if err != nil {
		return "", fmt.Errorf("attested release of the data key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(pt), nil
}

// Attested says how a workload in a Gramine enclave gets its data keys by
// attested release (ppml sql --attest, the quickstart's query).
type Attested struct {
	Config         client.Config // the KMS and attestation service, with the app's credentials
	QuoteType      string        // gramine (the default; the only one supported here)
	AttestationDir string        // default /dev/attestation, or one made by ppml sim enclave
	PolicyID       string        // the policy the data keys are bound to
	NewKeyID       string        // KMS key for new data keys (outputs); "" writes nothing encrypted
	Log            io.Writer
}

// RefusedError is a failed attestation: nothing was released.
type RefusedError struct{ Err error }

func (e *RefusedError) Error() string { return "attestation: " + e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// AttestedKeys attests the enclave before anything else, so that a refusal
// (a *RefusedError) ends the work before any input is read, and returns the
// key source that opens data keys by attested release.
func AttestedKeys(ctx context.Context, a Attested) (*ReleaseSource, error) {
	if a.QuoteType != "" && a.QuoteType != "gramine" {
		return nil, fmt.Errorf("--quote-type %q: only gramine is supported", a.QuoteType)
	}
	if a.Config.URL == "" || a.PolicyID == "" {
		return nil, errors.New("--attest needs --kms, --policy-id, --app-id and --api-key-file")
	}
	q, err := enclave.Gramine(a.AttestationDir)
	if err != nil {
		return nil, err
	}
	s, err := NewSession(a.Config, q, a.PolicyID, a.Log)
	if err != nil {
		return nil, err
	}
	if err := s.Attest(ctx); err != nil {
		return nil, &RefusedError{err}
	}
	src := &ReleaseSource{Session: s}
	if a.NewKeyID != "" {
		e, err := client.NewEHSM(a.Config)
		if err != nil {
			return nil, err
		}
		src.New = &kmskeys.EHSM{Client: e, KeyID: a.NewKeyID}
	}
	return src, nil
}
