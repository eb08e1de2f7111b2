package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// ErrUnavailable marks a store that cannot be reached for now.
var ErrUnavailable = errors.New("the database is unreachable")

// IsUnavailable reports whether err means the database could not be reached
// or went away (connection refused or reset, server shutting down or
// restarting), as opposed to a query that failed: the request may be retried
// here later or on another replica.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	// PostgreSQL: class 08 (connection exception), 57P01..57P03 (shutting
	// down, crashed, starting up); pgconn's errors expose SQLSTATE this way.
	var pe interface{ SQLState() string }
	if errors.As(err, &pe) {
		c := pe.SQLState()
		return strings.HasPrefix(c, "08") || c == "57P01" || c == "57P02" || c == "57P03"
	}
	// pgx reports a connection lost in the middle of a query in words.
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "failed to connect") ||
		strings.Contains(msg, "connection refused") || strings.Contains(msg, "broken pipe")
}
