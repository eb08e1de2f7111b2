package agent

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/ppml-project/ppml/client/kmskeys"
	"github.com/ppml-project/ppml/dataformat/keysource"
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
