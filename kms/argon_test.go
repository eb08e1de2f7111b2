package kms_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/kms"
)

// When every argon2id slot is taken (a flood of made-up BigDL tokens), a
// request waits a bounded time and gets a retryable error, instead of
// queueing behind the flood without end.
func TestArgonSlotsHaveADeadline(t *testing.T) {
	dir := t.TempDir()
	svc, _, _ := replica(t, filepath.Join(dir, "ppml.db"), filepath.Join(dir, "root.key"))
	ctx := context.Background()
	if err := svc.CreateBigDLUser(ctx, kms.Caller{API: "test"}, "alice", "alice-token-1"); err != nil {
		t.Fatal(err)
	}
	release := kms.HoldArgonSlots(200 * time.Millisecond)
	start := time.Now()
	err := svc.AuthenticateBigDLUser(ctx, "alice", "alice-token-1")
	if fault.KindOf(err) != fault.Unavailable || fault.CodeOf(err) != "busy" || time.Since(start) > 2*time.Second {
		t.Fatalf("with every slot taken: %v after %s", err, time.Since(start))
	}
	release()
	if err := svc.AuthenticateBigDLUser(ctx, "alice", "alice-token-1"); err != nil {
		t.Fatalf("after the flood: %v", err)
	}
}
