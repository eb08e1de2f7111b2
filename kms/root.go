package kms

import (
	"context"
	"errors"
	"sync"

	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/internal/shamir"
	"github.com/ppml-project/ppml/kms/rootkey"
)

// Root key operations. Each caller has passed CheckAdmin. Shares are
// returned once; they are never stored or logged.

func rootRefused(code string, err error) error {
	var fe *fault.Error
	if errors.As(err, &fe) {
		return err
	}
	if errors.Is(err, rootkey.ErrSealed) || errors.Is(err, rootkey.ErrUninitialized) {
		return fault.Errorf(fault.Sealed, "sealed", "%s", err.Error())
	}
	if errors.Is(err, rootkey.ErrInitialized) {
		return fault.Errorf(fault.Conflict, "already_initialized", "%s", err.Error())
	}
	return fault.Errorf(fault.Invalid, code, "%s", err.Error())
}

// InitRootKey creates the root key of an uninitialised Shamir store and
// returns the unseal shares. An initialised store is refused with a message
// naming rotate and rekey.
func (s *Service) InitRootKey(ctx context.Context, c Caller) (shares []shamir.Share, err error) {
	defer func() { err = s.record(c, "InitRootKey", "", err) }()
	shares, err = s.cfg.Root.Init(ctx)
	if err != nil {
		return nil, rootRefused("root_init_refused", err)
	}
	return shares, nil
}

// RotateRootKey starts a new root key term: new wraps use it at once, on
// every replica; the unseal key and its shares stay the same.
func (s *Service) RotateRootKey(ctx context.Context, c Caller) (term int, err error) {
	defer func() { err = s.record(c, "RotateRootKey", "", err) }()
	term, err = s.cfg.Root.Rotate(ctx)
	if err != nil {
		return 0, rootRefused("root_rotation_refused", err)
	}
	return term, nil
}

// RotateOrInitRootKey is BigDL's GET /rootKey/rotate: it initialises an
// uninitialised Shamir store (returning the shares) and otherwise rotates.
func (s *Service) RotateOrInitRootKey(ctx context.Context, c Caller) (shares []shamir.Share, term int, err error) {
	if s.cfg.Root.Mode() == rootkey.ModeShamir && !s.cfg.Root.Initialized() && s.cfg.Root.Sealed() {
		shares, err = s.InitRootKey(ctx, c)
		if fault.CodeOf(err) != "already_initialized" {
			return shares, 1, err
		}
	}
	term, err = s.RotateRootKey(ctx, c)
	return nil, term, err
}

// PrepareRekey creates new unseal shares; they replace the old ones only
// when CommitRekey(id) is called, after the caller has stored them.
func (s *Service) PrepareRekey(ctx context.Context, c Caller) (id string, shares []shamir.Share, err error) {
	defer func() { err = s.record(c, "PrepareRekey", "", err) }()
	id, shares, err = s.cfg.Root.PrepareRekey(ctx)
	if err != nil {
		return "", nil, rootRefused("rekey_refused", err)
	}
	return id, shares, nil
}

// CommitRekey makes the prepared shares id the only valid ones.
func (s *Service) CommitRekey(ctx context.Context, c Caller, id string) (err error) {
	defer func() { err = s.record(c, "CommitRekey", "", err) }()
	if err := s.cfg.Root.CommitRekey(ctx, id); err != nil {
		return rootRefused("rekey_refused", err)
	}
	return nil
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

// RewrapStatus is the state of this replica's re-wrap job.
type RewrapStatus struct {
	rootkey.RewrapProgress
	Running bool   `json:"running"`
	Error   string `json:"error,omitempty"`
}

type rewrapJob struct {
	mu     sync.Mutex
	status RewrapStatus
}

// StartRewrap starts the background job that moves rows under old root key
// terms to the current one (if it is not already running on this replica)
// and returns its status. It is safe to run again, on any replica.
func (s *Service) StartRewrap(c Caller) (st RewrapStatus, err error) {
	defer func() { err = s.record(c, "RewrapRootKey", "", err) }()
	if err := s.requireUnsealed(); err != nil {
		return st, err
	}
	j := &s.rewrap
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.status.Running {
		return j.status, nil
	}
	j.status = RewrapStatus{Running: true}
	go func() {
		p, err := s.cfg.Root.Rewrap(context.Background(), func(p rootkey.RewrapProgress) {
			j.mu.Lock()
			j.status.RewrapProgress = p
			j.mu.Unlock()
		})
		j.mu.Lock()
		j.status.RewrapProgress, j.status.Running = p, false
		if err != nil {
			j.status.Error = err.Error()
			s.cfg.Logger.Error("root key re-wrap stopped; run it again to resume", "err", err)
		} else {
			s.cfg.Logger.Info("root key re-wrap finished", "term", p.Term, "scanned", p.Scanned, "rewrapped", p.Rewrapped)
		}
		j.mu.Unlock()
	}()
	return j.status, nil
}

// Rewrap reports this replica's re-wrap job.
func (s *Service) Rewrap() RewrapStatus {
	s.rewrap.mu.Lock()
	defer s.rewrap.mu.Unlock()
	return s.rewrap.status
}

// RootStatus describes the root keyring.
func (s *Service) RootStatus() (sealed, initialized bool, mode rootkey.Mode, term int) {
	r := s.cfg.Root
	return r.Sealed(), r.Initialized(), r.Mode(), r.Term()
}
