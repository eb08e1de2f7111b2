// Package quotetest helps tests that use the real Intel DCAP vectors in
// shared/testdata/dcap beside the repository.
package quotetest

import (
	"os"
	"testing"
)

// MissingVectors ends a test whose vectors could not be read: a failure
// under CI (where shared/ is part of the set-up, so a skip would hide that
// nothing was verified), a skip elsewhere.
func MissingVectors(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("DCAP test vectors missing under CI (shared/testdata/dcap beside the repository): %v", err)
	}
	t.Skipf("DCAP test vectors not available (shared/testdata/dcap beside the repository): %v", err)
}
