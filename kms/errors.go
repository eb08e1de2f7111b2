package kms

import (
	"errors"
	"fmt"
)

// Kind classifies errors so each protocol adapter can map them to its own
// codes; the message always says what was wrong and what to do.
type Kind int

const (
	KindInternal        Kind = iota
	KindInvalid              // malformed or unacceptable input
	KindUnauthenticated      // bad or missing credentials
	KindForbidden            // authenticated, but not allowed
	KindNotFound             // unknown (or not the caller's) key, app, data key
	KindConflict             // already exists
	KindDisabled             // key disabled
	KindPendingDeletion      // key scheduled for deletion
	KindUnsupported          // valid request for something we deliberately do not do
	KindSealed               // root key not available
)

// Error is a KMS error with a kind and a user-facing message.
type Error struct {
	Kind Kind
	Code string // stable machine-readable reason, e.g. "key_not_found"
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

func errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of err (KindInternal for foreign errors).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// CodeOf returns the stable reason code of err.
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
