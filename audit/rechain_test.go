package audit_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

// rechain recomputes every prev field, as an attacker without the
// checkpoint key can.
func rechain(t *testing.T, lines []string) []byte {
	t.Helper()
	var out strings.Builder
	var prev [32]byte
	for _, l := range lines {
		l = strings.TrimSuffix(l, "\n")
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if _, ok := m["seq"]; ok {
			m["prev"] = hex.EncodeToString(prev[:])
		}
		b, _ := json.Marshal(m)
		out.Write(b)
		out.WriteByte('\n')
		prev = sha256.Sum256(b)
	}
	return []byte(out.String())
}
