package instrumented_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/ppml-project/ppml/store"
	"github.com/ppml-project/ppml/store/instrumented"
	"github.com/ppml-project/ppml/store/sqlstore"
)

func TestTimesEveryCall(t *testing.T) {
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	type call struct {
		op  string
		err error
	}
	var calls []call
	s := instrumented.New(db, func(op string, err error, d time.Duration) {
		if d < 0 {
			t.Errorf("negative duration")
		}
		calls = append(calls, call{op, err})
	})
	defer s.Close()
	if _, err := s.PutMetaIfAbsent(ctx, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetMeta(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetMeta: %v", err)
	}
	if fresh, err := s.SpendNonce(ctx, "n", "app", time.Now().Add(time.Minute)); err != nil || !fresh {
		t.Fatal(fresh, err)
	}
	if fresh, err := s.SpendNonce(ctx, "n", "app", time.Now().Add(time.Minute)); err != nil || fresh {
		t.Fatalf("a nonce spent twice: %v %v", fresh, err)
	}
	want := []string{"PutMetaIfAbsent", "GetMeta", "SpendNonce", "SpendNonce"}
	if len(calls) != len(want) {
		t.Fatalf("calls %v", calls)
	}
	for i, w := range want {
		if calls[i].op != w {
			t.Errorf("call %d = %s, want %s", i, calls[i].op, w)
		}
	}
	if !errors.Is(calls[1].err, store.ErrNotFound) || calls[0].err != nil {
		t.Errorf("errors not passed on: %v", calls)
	}
	if s.Unwrap() != store.Store(db) {
		t.Error("Unwrap")
	}
}
