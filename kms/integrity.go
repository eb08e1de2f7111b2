package kms

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/store"
	"github.com/ppml-project/ppml/store/rowmac"
)

// Key rows carry a MAC (store/rowmac) over every field a decision reads:
// owner, name, spec, origin, usage, state, current version, dates, release
// policies and decrypters. It is checked on every read and renewed, as a
// compare-and-swap, on every change.

const keyRowDomain = "key"

func msText(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

func listText(l []string) string {
	if l == nil {
		l = []string{}
	}
	b, _ := json.Marshal(l)
	return string(b)
}

func keyRowFields(k store.Key) []string {
	return []string{k.ID, k.Owner, k.Name, k.Spec, k.Origin, k.Usage, k.State, strconv.Itoa(k.CurrentVersion),
		msText(k.CreatedAt), msText(k.DeletionAt), listText(k.ReleasePolicies), listText(k.Decrypters)}
}

func newKeyRows(cfg Config) *rowmac.Keeper {
	return rowmac.New(cfg.Root, cfg.Store, "keys", func(ctx context.Context, sum rowmac.SumFunc) error {
		n, err := cfg.Store.BackfillKeyMACs(ctx, func(k store.Key) ([]byte, error) { return sum(keyRowDomain, keyRowFields(k)...), nil })
		if err == nil && n > 0 {
			cfg.Logger.Warn("row integrity: authenticated key rows written before row MACs existed, as they are now (first start after the upgrade)", "rows", n)
		}
		return err
	})
}

// keyMAC is the MAC of k as it will be stored.
func (s *Service) keyMAC(ctx context.Context, k store.Key) ([]byte, error) {
	mac, err := s.rows.Sum(ctx, keyRowDomain, keyRowFields(k)...)
	if err != nil {
		return nil, s.internal("key integrity", err)
	}
	return mac, nil
}

// checkKeyRow refuses a key row that does not match its MAC: it was edited
// in the database, not through the service.
func (s *Service) checkKeyRow(ctx context.Context, k store.Key) error {
	if k.MAC == nil {
		// Perhaps read just before the first-start backfill gave it one.
		if err := s.rows.Ready(ctx); err != nil {
			return s.internal("key integrity", err)
		}
		if fresh, err := s.cfg.Store.GetKey(ctx, k.ID); err == nil && slices.Equal(keyRowFields(fresh), keyRowFields(k)) {
			k = fresh
		}
	}
	ok, err := s.rows.Valid(ctx, k.MAC, keyRowDomain, keyRowFields(k)...)
	if err != nil {
		return s.internal("key integrity", err)
	}
	if !ok {
		s.cfg.Logger.Error("key row failed its integrity check: it was modified in the database", "key_id", k.ID)
		return fault.Errorf(fault.Internal, "key_integrity", "Server exception. [key_integrity] the stored description of key %s (owner, state, spec, policies or decrypters) failed its integrity check; the administrator must restore it from backup", k.ID)
	}
	return nil
}
