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
	for end := time.Now().Add(150 * time.Millisecond); time.Now().Before(end); {
	}
	r1, err := ProcessCPU()
	if err != nil {
		t.Fatal(err)
	}
	p, err := PIDCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if r1-r0 < 50*time.Millisecond {
		t.Fatalf("rusage grew by %v over 150 ms of spinning", r1-r0)
	}
	if d := r1 - p; d < -30*time.Millisecond || d > 30*time.Millisecond {
		t.Fatalf("/proc says %v, rusage %v", p, r1)
	}
	if _, err := PIDCPU(1 << 30); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}
