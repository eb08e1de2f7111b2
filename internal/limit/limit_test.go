package limit

import (
	"context"
	"testing"
	"time"

	"github.com/ppml-project/ppml/fault"
)

// A caller over its share waits behind itself and gets TooMany; a full
// server gets Unavailable; both with Retry-After; releasing (twice too)
// gives the slots back and forgets idle callers.
func TestShares(t *testing.T) {
	l := New("test work", Config{Global: 2, PerCaller: 1, Wait: 50 * time.Millisecond})
	ctx := context.Background()
	a1, err := l.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(ctx, "a"); fault.KindOf(err) != fault.TooMany || fault.RetryAfterOf(err) < time.Second {
		t.Fatalf("a over its share: %v", err)
	}
	b1, err := l.Acquire(ctx, "b")
	if err != nil {
		t.Fatalf("b beside a: %v", err)
	}
	start := time.Now()
	if _, err := l.Acquire(ctx, "c"); fault.KindOf(err) != fault.Unavailable || fault.CodeOf(err) != "busy" || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("c with every slot taken: %v after %s", err, time.Since(start))
	}
	a1()
	a1()
	if l.InFlight() != 1 {
		t.Fatalf("after a's release (twice): %d in flight", l.InFlight())
	}
	c1, err := l.Acquire(ctx, "c")
	if err != nil {
		t.Fatalf("c after a's release: %v", err)
	}
	b1()
	c1()
	if len(l.callers) != 0 || l.InFlight() != 0 {
		t.Fatalf("idle limiter keeps %d callers, %d slots", len(l.callers), l.InFlight())
	}
	var nilLimiter *Limiter
	if r, err := nilLimiter.Acquire(ctx, "x"); err != nil {
		t.Fatal(err)
	} else {
		r()
	}
	if CallerOf(WithCaller(ctx, "app-1")) != "app-1" || CallerOf(ctx) != "" {
		t.Fatal("WithCaller/CallerOf")
	}
}
