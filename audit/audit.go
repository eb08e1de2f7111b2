// Package audit writes one JSON line per security-relevant operation: who,
// what, on which key, and the outcome with its reason. It never receives key
// material, API keys or tokens, so it cannot log them.
package audit

import (
	"encoding/json"
	"io"
	"os"
	"sync"
	"time"
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

// Logger appends events as JSON lines to a writer.
type Logger struct {
	mu  sync.Mutex
	w   io.Writer
	enc *json.Encoder
	c   io.Closer
}

// New logs to w.
func New(w io.Writer) *Logger { return &Logger{w: w, enc: json.NewEncoder(w)} }

// OpenFile appends to path, created with mode 0600.
func OpenFile(path string) (*Logger, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	l := New(f)
	l.c = f
	return l, nil
}

// Record writes e; a nil Logger discards.
func (l *Logger) Record(e Event) {
	if l == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if e.Principal == "" {
		e.Principal = "-"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.enc.Encode(e)
}

// Close closes the underlying file, if any.
func (l *Logger) Close() error {
	if l == nil || l.c == nil {
		return nil
	}
	return l.c.Close()
}
