package kms_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/internal/limit"
	"github.com/ppml-project/ppml/kms"
	"github.com/ppml-project/ppml/kms/rootkey"
	"github.com/ppml-project/ppml/store/sqlstore"
)

func limitedReplica(t *testing.T, limits kms.Limits) *kms.Service {
	t.Helper()
	dir := t.TempDir()
	db, err := sqlstore.Open(context.Background(), filepath.Join(dir, "ppml.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kr, _, err := rootkey.OpenFile(context.Background(), db, filepath.Join(dir, "root.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	return kms.New(kms.Config{Store: db, Root: kr, Limits: limits, AuthFailureDelay: -1})
}

// When every argon2id slot is taken (a flood of made-up BigDL tokens), a
// request for a token not seen yet waits a bounded time and gets a
// retryable error, instead of queueing behind the flood without end; a
// user whose token was verified before is not held up at all.
func TestArgonSlotsHaveADeadline(t *testing.T) {
	svc := limitedReplica(t, kms.Limits{Argon: limit.Config{Global: 2, Wait: 200 * time.Millisecond, PerCallerRate: 100}})
	ctx := context.Background()
	for _, u := range []string{"alice", "bob"} {
		if err := svc.CreateBigDLUser(ctx, kms.Caller{API: "test"}, u, u+"-token-1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.AuthenticateBigDLUser(ctx, "bob", "bob-token-1"); err != nil {
		t.Fatal(err)
	}
	release := svc.HoldArgonSlots()
	start := time.Now()
	err := svc.AuthenticateBigDLUser(ctx, "alice", "alice-token-1")
	if fault.KindOf(err) != fault.Unavailable || fault.CodeOf(err) != "busy" || fault.RetryAfterOf(err) < time.Second || time.Since(start) > 2*time.Second {
		t.Fatalf("with every slot taken: %v (retry after %s) after %s", err, fault.RetryAfterOf(err), time.Since(start))
	}
	// bob's token passed argon2id before: no slot needed.
	start = time.Now()
	if err := svc.AuthenticateBigDLUser(ctx, "bob", "bob-token-1"); err != nil || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("a verified user during the flood: %v after %s", err, time.Since(start))
	}
	// A wrong token for bob is not let through by that memory.
	if err := svc.AuthenticateBigDLUser(ctx, "bob", "bob-token-2"); fault.CodeOf(err) != "busy" {
		t.Fatalf("a wrong token for a verified user during the flood: %v", err)
	}
	release()
	if err := svc.AuthenticateBigDLUser(ctx, "alice", "alice-token-1"); err != nil {
		t.Fatalf("after the flood: %v", err)
	}
	if err := svc.AuthenticateBigDLUser(ctx, "bob", "bob-token-2"); fault.CodeOf(err) != "bad_credentials" {
		t.Fatalf("a wrong token for a verified user: %v", err)
	}
}

// One user name flooded with made-up tokens gets its share of the argon2id
// slots (429-style too_many_in_flight past the wait), not all of them.
func TestArgonSharePerUser(t *testing.T) {
	svc := limitedReplica(t, kms.Limits{Argon: limit.Config{Global: 2, PerCaller: 1, Wait: 50 * time.Millisecond}})
	ctx := context.Background()
	if err := svc.CreateBigDLUser(ctx, kms.Caller{API: "test"}, "carol", "carol-token-1"); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 16)
	for range 16 {
		go func() { errs <- svc.AuthenticateBigDLUser(ctx, "mallory", "made-up-token") }()
	}
	if err := svc.AuthenticateBigDLUser(ctx, "carol", "carol-token-1"); err != nil {
		t.Fatalf("another user during a flood of one name: %v", err)
	}
	tooMany := 0
	for range 16 {
		if err := <-errs; fault.KindOf(err) == fault.TooMany {
			tooMany++
		} else if c := fault.CodeOf(err); c != "bad_credentials" && c != "busy" {
			t.Fatalf("flooded name: %v", err)
		}
	}
	if tooMany == 0 {
		t.Fatal("16 concurrent hashes for one name: none refused for its share")
	}
}

// Guessing one user's token is paced per user name (Limits.Argon.
// PerCallerRate), whatever the global room: one guess at a time at that
// rate, the rest refused with too_many_in_flight.
func TestArgonRatePerUser(t *testing.T) {
	svc := limitedReplica(t, kms.Limits{Argon: limit.Config{Global: 4, PerCaller: 4, Wait: 300 * time.Millisecond, PerCallerRate: 2}})
	ctx := context.Background()
	if err := svc.CreateBigDLUser(ctx, kms.Caller{API: "test"}, "dave", "dave-token-1"); err != nil {
		t.Fatal(err)
	}
	refused, wrong := 0, 0
	for range 6 {
		switch err := svc.AuthenticateBigDLUser(ctx, "dave", "guess"); fault.CodeOf(err) {
		case "too_many_in_flight":
			refused++
		case "bad_credentials":
			wrong++
		default:
			t.Fatalf("a guess: %v", err)
		}
	}
	// 6 guesses in a row: the first at once, then one per 500 ms, each
	// waiting at most 300 ms: every other one is refused.
	if refused < 2 || wrong > 4 {
		t.Fatalf("6 guesses in a row at 2 per second: %d checked, %d refused", wrong, refused)
	}
}
