// Package httputil holds the small HTTP helpers every protocol adapter uses.
package httputil

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ppml-project/ppml/fault"
)

// MaxBody is the largest request body an adapter reads (1 MiB).
const MaxBody = 1 << 20

// ReadBody reads a request body of at most MaxBody bytes; each protocol
// words the error its own way.
func ReadBody(r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBody))
}

// IsLowerUUID reports whether s is a UUID in lower case (key and policy
// ids): 8-4-4-4-12 characters of a-z and 0-9. Checked by hand, not by a
// regular expression: it runs on every eHSM request.
func IsLowerUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
				return false
			}
		}
	}
	return true
}

// IsStdBase64 reports whether s is non-empty standard base64 with padding.
// The decoder checks the alphabet and the padding; it would skip line
// breaks, which are refused here.
func IsStdBase64(s string) bool {
	if s == "" || len(s)%4 != 0 || strings.ContainsAny(s, "\r\n") {
		return false
	}
	_, err := base64.StdEncoding.DecodeString(s)
	return err == nil
}

// StatusOf maps a kms error kind to the HTTP status of the protocols that
// use real statuses (native, BigDL KMS).
func StatusOf(err error) int {
	switch fault.KindOf(err) {
	case fault.Invalid, fault.Unsupported:
		return http.StatusBadRequest
	case fault.Unauthenticated:
		return http.StatusUnauthorized
	case fault.Forbidden:
		return http.StatusForbidden
	case fault.NotFound:
		return http.StatusNotFound
	case fault.Conflict, fault.Disabled, fault.PendingDeletion:
		return http.StatusConflict
	case fault.Sealed, fault.Unavailable:
		return http.StatusServiceUnavailable
	case fault.TooMany:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// SetRetryAfter sets Retry-After (whole seconds, rounded up) when err
// carries a retry hint (a busy server, a caller over its share).
func SetRetryAfter(h http.Header, err error) {
	if d := fault.RetryAfterOf(err); d > 0 {
		h.Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
	}
}

// BearerToken returns the token of an "Authorization: Bearer" header, or "".
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// CollapseSlashes returns path with every run of slashes replaced by one
// (BigDL's Scala client sends //dataKey/...).
func CollapseSlashes(path string) string {
	if !strings.Contains(path, "//") {
		return path
	}
	var b strings.Builder
	prev := byte(0)
	for i := 0; i < len(path); i++ {
		if path[i] == '/' && prev == '/' {
			continue
		}
		prev = path[i]
		b.WriteByte(path[i])
	}
	return b.String()
}

// EncodeJSON writes v as JSON without HTML escaping, so messages such as
// "send 'Authorization: Bearer <token>'" read as written.
func EncodeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
