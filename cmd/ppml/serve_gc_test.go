package main

import (
	"runtime/debug"
	"testing"
)

// ppml serve raises the collector's target unless GOGC says otherwise.
func TestServerGCPercent(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	t.Setenv("GOGC", "")
	serverGC()
	if got := debug.SetGCPercent(100); got != serverGCPercent {
		t.Fatalf("GC percent %d without GOGC, want %d", got, serverGCPercent)
	}
	t.Setenv("GOGC", "150")
	serverGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent %d with GOGC set, want it left alone (100)", got)
	}
}
