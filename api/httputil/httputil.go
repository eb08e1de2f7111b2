// Package httputil holds the small HTTP helpers every protocol adapter uses.
package httputil

import (
	"net/http"
	"strings"
)

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
