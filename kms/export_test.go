package kms

import (
	"context"
	"fmt"

	"github.com/ppml-project/ppml/store"
)

// HoldArgonSlots takes every argon2id slot, as a flood of made-up tokens
// for as many user names would; release gives them back.
func (s *Service) HoldArgonSlots() (release func()) {
	var rs []func()
	for i := range s.argon.Config().Global {
		r, err := s.argon.Acquire(context.Background(), fmt.Sprintf("bigdl:flood-%d", i))
		if err != nil {
			panic(err)
		}
		rs = append(rs, r)
	}
	return func() {
		for _, r := range rs {
			r()
		}
	}
}

// HoldRSASlots takes every RSA generation slot; release gives them back.
func (s *Service) HoldRSASlots(caller string) (release func()) {
	var rs []func()
	for range s.rsa.Config().Global {
		r, err := s.rsa.Acquire(context.Background(), caller)
		if err != nil {
			panic(err)
		}
		rs = append(rs, r)
	}
	return func() {
		for _, r := range rs {
			r()
		}
	}
}

// CheckKeyRow is checkKeyRow, for a row read before a concurrent change.
func (s *Service) CheckKeyRow(ctx context.Context, k store.Key) error { return s.checkKeyRow(ctx, k) }
