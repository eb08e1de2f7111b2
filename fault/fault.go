// Package fault holds the error kinds every service and protocol adapter
// shares. A core (kms, attestation) returns a *Error with a Kind and a stable
// Code; each adapter maps the Kind to its own wire codes (eHSM result codes,
// HTTP statuses) and passes the message on, which always says what was wrong
// and what to do.
package fault

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error independently of any protocol.
type Kind int

const (
	Internal        Kind = iota
	Invalid              // malformed or unacceptable input
	Unauthenticated      // bad or missing credentials
	Forbidden            // authenticated, but not allowed
	NotFound             // unknown (or not the caller's) key, app, data key, route
	Conflict             // already exists
	Disabled             // key disabled
	PendingDeletion      // key scheduled for deletion
	Unsupported          // valid request for something we deliberately do not do
	Sealed               // root key not available
	Unavailable          // a dependency (database, audit log) failed, or the server is busy, for now: retry later
	TooMany              // the caller has as much slow work in flight as one caller may: retry later
)

// Error is an error with a kind, a stable machine-readable code (e.g.
// "key_not_found") and a user-facing message.
type Error struct {
	Kind Kind
	Code string
	Msg  string
	// RetryAfter, when set, is how long a client should wait before
	// retrying (adapters send it as Retry-After).
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Msg }

// Errorf builds an *Error; the message is formatted as by fmt.Sprintf.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Invalidf is Errorf(Invalid, ...): the error for malformed or unacceptable input.
func Invalidf(code, format string, args ...any) *Error {
	return Errorf(Invalid, code, format, args...)
}

// KindOf returns the kind of err (Internal for errors of other packages).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// CodeOf returns the stable reason code of err: "ok" for nil, "internal" for
// errors of other packages.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return "ok"
	}
	return "internal"
}

// RetryAfterOf returns the retry hint of err (0 when none).
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
