// Package audit writes one JSON line per security-relevant operation: who,
// what, on which key, and the outcome with its reason. It never receives key
// material, API keys or tokens, so it cannot log them.
//
// Durability follows the operator's choice (Sync): with SyncAlways a record
// is on disk (fsync) before Record returns; with SyncBatch it has reached the
// operating system (write) and is flushed to disk within BatchInterval. A
// record that cannot be written makes Record fail, and callers fail the
// request it describes (as Vault does): an operation nobody can audit does
// not happen silently.
package audit

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/ppml-project/ppml/fault"
)

// Event is one audit record.
type Event struct {
	Time      time.Time `json:"time"`
	API       string    `json:"api,omitempty"`    // ehsm, bigdl-kms, native, operator
	Principal string    `json:"principal"`        // app id, bigdl:<user>, admin, or "-" when unauthenticated
	Action    string    `json:"action"`           // CreateKey, Decrypt, ...
	KeyID     string    `json:"key_id,omitempty"` // key concerned, if any
	Result    string    `json:"result"`           // ok or a stable reason code
	Reason    string    `json:"reason,omitempty"` // human explanation of a refusal
	Remote    string    `json:"remote,omitempty"` // client address
}

// Sync is when records reach the disk.
type Sync string

const (
	// SyncAlways: fsync before Record returns (concurrent records share one
	// fsync).
	SyncAlways Sync = "always"
	// SyncBatch: written before Record returns, fsynced every BatchInterval.
	SyncBatch Sync = "batch"
)

// BatchInterval bounds how long a SyncBatch record may sit in the page cache.
const BatchInterval = 200 * time.Millisecond

// ParseSync parses a --audit-sync value ("" is batch).
func ParseSync(s string) (Sync, error) {
	switch Sync(s) {
	case "", SyncBatch:
		return SyncBatch, nil
	case SyncAlways:
		return SyncAlways, nil
	}
	return "", fmt.Errorf("--audit-sync %q: want always or batch", s)
}

// ErrUnavailable wraps every failure to write or sync a record.
var ErrUnavailable = errors.New("the audit log cannot be written")

// Refusal is the error of a request whose audit record could not be
// written: retryable, HTTP 503.
func Refusal(action string) error {
	return fault.Errorf(fault.Unavailable, "audit_unavailable", "%s not acknowledged: the audit log cannot be written on this server; retry later (the administrator must fix the audit log's disk)", action)
}

// syncer is what a file offers beyond io.Writer.
type syncer interface{ Sync() error }

// Logger appends events as JSON lines to a writer.
type Logger struct {
	mode Sync

	mu      sync.Mutex // guards w, written, closed, the chain
	w       io.Writer
	written uint64 // records written so far
	closed  bool
	seq     uint64            // chain: seq of the last line
	prev    [32]byte          // chain: SHA-256 of the last line
	ckey    *ecdsa.PrivateKey // signs checkpoints; nil: none
	lastCk  time.Time
	sinceCk int
	c       io.Closer
	s       syncer // nil for plain writers: nothing to sync

	smu     sync.Mutex // guards synced, syncErr, syncing
	scond   *sync.Cond
	synced  uint64 // records known to be on disk
	syncing bool
	syncErr error // last fsync failure, until an fsync succeeds

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// New logs to w (no fsync: tests and standard output).
func New(w io.Writer) *Logger {
	l := &Logger{mode: SyncBatch, w: w}
	l.scond = sync.NewCond(&l.smu)
	return l
}

// OpenFile appends to path, created with mode 0600, syncing as mode says.
func OpenFile(path string, mode Sync) (*Logger, error) {
	if mode == "" {
		mode = SyncBatch
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	l := New(f)
	l.mode, l.c, l.s = mode, f, f
	if err := l.resume(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("reading the end of %s to continue its hash chain: %w", path, err)
	}
	if mode == SyncBatch {
		l.stop, l.done = make(chan struct{}), make(chan struct{})
		go l.flushLoop()
	}
	return l, nil
}

// Record writes e and returns an error wrapping ErrUnavailable when it could
// not be written (or, with SyncAlways, synced). A nil Logger discards.
func (l *Logger) Record(e Event) error {
	if l == nil {
		return nil
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if e.Principal == "" {
		e.Principal = "-"
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("%w: it is closed", ErrUnavailable)
	}
	if err := l.appendLocked(e, false); err != nil {
		l.mu.Unlock()
		return err
	}
	if l.ckey != nil {
		l.sinceCk++
		if l.sinceCk >= CheckpointEvery || time.Since(l.lastCk) >= CheckpointInterval {
			if err := l.checkpointLocked(); err != nil {
				l.mu.Unlock()
				return err
			}
		}
	}
	seq := l.written
	l.mu.Unlock()
	if l.s == nil {
		return nil
	}
	if l.mode == SyncAlways {
		return l.syncThrough(seq)
	}
	// Batch: a record is accepted while the last background fsync worked.
	l.smu.Lock()
	err := l.syncErr
	l.smu.Unlock()
	return err
}

// appendLocked writes e as the next line of the chain (l.mu held).
func (l *Logger) appendLocked(e Event, sign bool) error {
	b, err := l.encodeLocked(e, sign)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if _, err := l.w.Write(b); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	l.advanceLocked(b)
	l.written++
	return nil
}

func (l *Logger) checkpointLocked() error {
	l.sinceCk, l.lastCk = 0, time.Now()
	return l.appendLocked(Event{Time: time.Now().UTC(), API: "audit", Principal: "system", Action: CheckpointAction, Result: "ok"}, true)
}

// syncThrough returns once record seq is on disk. One caller at a time runs
// fsync; the others wait for it, and a single fsync covers every record
// written before it started (group commit).
func (l *Logger) syncThrough(seq uint64) error {
	l.smu.Lock()
	defer l.smu.Unlock()
	for {
		if l.synced >= seq {
			return nil
		}
		if !l.syncing {
			break
		}
		l.scond.Wait()
	}
	l.syncing = true
	l.smu.Unlock()
	l.mu.Lock()
	upto := l.written
	l.mu.Unlock()
	err := l.s.Sync()
	l.smu.Lock()
	l.syncing = false
	l.scond.Broadcast()
	if err != nil {
		l.syncErr = fmt.Errorf("%w: fsync: %v", ErrUnavailable, err)
		return l.syncErr
	}
	l.syncErr = nil
	if upto > l.synced {
		l.synced = upto
	}
	return nil
}

func (l *Logger) flushLoop() {
	defer close(l.done)
	t := time.NewTicker(BatchInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		seq := l.written
		l.mu.Unlock()
		_ = l.syncThrough(seq) // a failure is kept in syncErr and fails the next Record
	}
}

// Close flushes and closes the underlying file, if any.
func (l *Logger) Close() error {
	if l == nil || l.c == nil {
		return nil
	}
	l.closeOnce.Do(func() {
		if l.stop != nil {
			close(l.stop)
			<-l.done
		}
		l.mu.Lock()
		var cerr error
		if l.ckey != nil && l.sinceCk > 0 {
			cerr = l.checkpointLocked() // the tail is covered on a clean stop
		}
		seq := l.written
		l.mu.Unlock()
		serr := l.syncThrough(seq)
		if serr == nil {
			serr = cerr
		}
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		if l.closeErr = l.c.Close(); l.closeErr == nil {
			l.closeErr = serr
		}
	})
	return l.closeErr
}
