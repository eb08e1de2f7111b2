package kms

import (
	"context"

	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/internal/shamir"
)

// RotateRootKey creates a new root key (Shamir provider) and re-wraps every
// stored secret under it; before initialisation it initialises the store.
// The caller has passed CheckAdmin. The shares are returned once; they are
// never stored or logged.
func (s *Service) RotateRootKey(ctx context.Context, c Caller) (shares []shamir.Share, err error) {
	defer func() { err = s.record(c, "RotateRootKey", "", err) }()
	shares, err = s.cfg.Root.Rotate(ctx)
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "root_rotation_refused", "%s", err.Error())
	}
	return shares, nil
}

// SubmitShare adds an unseal share. The caller has passed CheckAdmin.
func (s *Service) SubmitShare(ctx context.Context, c Caller, index int, content []byte) (held int, unsealed bool, err error) {
	defer func() { err = s.record(c, "SubmitShare", "", err) }()
	held, unsealed, err = s.cfg.Root.SubmitShare(ctx, index, content)
	if err != nil {
		return 0, false, fault.Errorf(fault.Invalid, "share_refused", "%s", err.Error())
	}
	return held, unsealed, nil
}
