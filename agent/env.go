package agent

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// Getenv returns the first non-empty environment variable among names (the
// current name first, then BigDL's older spellings), warning on w when an
// older one is used.
func Getenv(w io.Writer, names ...string) string {
	for i, n := range names {
		if v := os.Getenv(n); v != "" {
			if i > 0 {
				fmt.Fprintf(w, "[WARN] %s is deprecated; use %s\n", n, names[0])
			}
			return v
		}
	}
	return ""
}

// SetBigDLProxy sets HTTPS_PROXY from BigDL's ATTESTATION_PORXY_HOST and
// ATTESTATION_PORXY_PORT (attestation.sh's spelling, misspelling included)
// unless HTTPS_PROXY is set already.
func SetBigDLProxy() {
	if host := os.Getenv("ATTESTATION_PORXY_HOST"); host != "" && os.Getenv("HTTPS_PROXY") == "" {
		proxy := "http://" + host
		if port := os.Getenv("ATTESTATION_PORXY_PORT"); port != "" {
			proxy += ":" + port
		}
		os.Setenv("HTTPS_PROXY", proxy)
	}
}

// ParseDataKeys reads --data-key WRAPPED=DEST specs.
func ParseDataKeys(specs []string) ([]DataKey, error) {
	var keys []DataKey
	for _, d := range specs {
		w, dest, ok := strings.Cut(d, "=")
		if !ok {
			return nil, fmt.Errorf("--data-key %q: want WRAPPED=DEST", d)
		}
		keys = append(keys, DataKey{Wrapped: w, Dest: dest})
	}
	return keys, nil
}
