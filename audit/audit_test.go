package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestRecordSyncModesKeepEveryRecord(t *testing.T) {
	for _, mode := range []Sync{SyncAlways, SyncBatch} {
		t.Run(string(mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			l, err := OpenFile(path, mode)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 50; i++ {
						if err := l.Record(Event{Action: "CreateKey", Principal: "app"}); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if err := l.Record(Event{Action: "late"}); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Record after Close = %v, want ErrUnavailable", err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			n := 0
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var e Event
				if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action != "CreateKey" {
					t.Fatalf("line %d: %q (%v)", n+1, sc.Text(), err)
				}
				n++
			}
			if n != 400 {
				t.Fatalf("%d records on disk, want 400", n)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Fatalf("audit log mode %v, want 0600", fi.Mode().Perm())
			}
		})
	}
}

// /dev/full fails every write with ENOSPC, like a full disk.
func TestRecordFailsWhenTheDiskIsFull(t *testing.T) {
	for _, mode := range []Sync{SyncAlways, SyncBatch} {
		l, err := OpenFile("/dev/full", mode)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Record(Event{Action: "Decrypt"}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("%s: Record on a full disk = %v, want ErrUnavailable", mode, err)
		}
		l.Close()
	}
}

func TestParseSync(t *testing.T) {
	for in, want := range map[string]Sync{"": SyncBatch, "batch": SyncBatch, "always": SyncAlways} {
		if got, err := ParseSync(in); err != nil || got != want {
			t.Errorf("ParseSync(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseSync("sometimes"); err == nil {
		t.Error("ParseSync(sometimes) accepted")
	}
}
