package loadgen

import (
	"os"
	"testing"
	"time"
)

// This process's CPU time read both ways grows with work and agrees
// within /proc's 10 ms resolution.
func TestPIDCPUAgreesWithRusage(t *testing.T) {
	r0, err := ProcessCPU()
	if err != nil {
		t.Fatal(err)
	}
	// Spin until this process has used 100 ms of CPU (on a loaded machine
	// that takes longer than 100 ms of wall time; 30 s bounds it).
	var r1 time.Duration
	for end := time.Now().Add(30 * time.Second); r1-r0 < 100*time.Millisecond; {
		if time.Now().After(end) {
			t.Fatalf("rusage grew by %v over 30 s of spinning", r1-r0)
		}
		if r1, err = ProcessCPU(); err != nil {
			t.Fatal(err)
		}
	}
	p, err := PIDCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := r1 - p; d < -30*time.Millisecond || d > 30*time.Millisecond {
		t.Fatalf("/proc says %v, rusage %v", p, r1)
	}
	if _, err := PIDCPU(1 << 30); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}
