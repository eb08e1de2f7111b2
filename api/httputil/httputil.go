// Package httputil holds the small HTTP helpers every protocol adapter uses.
package httputil

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
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

var (
	uuidPattern   = regexp.MustCompile(`^[a-z0-9]{8}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{12}$`)
	base64Pattern = regexp.MustCompile(`^[A-Za-z0-9+/]+={0,2}$`)
)

// IsLowerUUID reports whether s is a UUID in lower case (key and policy ids).
func IsLowerUUID(s string) bool { return uuidPattern.MatchString(s) }

// IsStdBase64 reports whether s is non-empty standard base64 with padding.
func IsStdBase64(s string) bool {
	if len(s)%4 != 0 || !base64Pattern.MatchString(s) {
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
