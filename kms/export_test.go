package kms

import (
	"context"
	"fmt"

	"github.com/ppml-project/ppml/internal/limit"
	"github.com/ppml-project/ppml/store"
)

// HoldArgonSlots takes every argon2id slot, as a flood of made-up tokens
// for as many user names would; release gives them back.
func (s *Service) HoldArgonSlots() (release func()) {
	return holdAll(s.argon, func(i int) string { return fmt.Sprintf("bigdl:flood-%d", i) })
}

// HoldRSASlots takes every RSA generation slot; release gives them back.
func (s *Service) HoldRSASlots(caller string) (release func()) {
	return holdAll(s.rsa, func(int) string { return caller })
}

// holdAll takes every slot of l, the i-th for caller(i).
func holdAll(l *limit.Limiter, caller func(i int) string) (release func()) {
	var rs []func()
	for i := range l.Config().Global {
		r, err := l.Acquire(context.Background(), caller(i))
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
