package httputil

import (
	"encoding/base64"
	"math/rand"
	"regexp"
	"testing"
)

// The hand-written checks accept exactly what the patterns they replaced
// accept: the patterns below, then (base64) the length and the decoder.
func TestIsLowerUUIDAndIsStdBase64MatchThePatterns(t *testing.T) {
	uuid := regexp.MustCompile(`^[a-z0-9]{8}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{12}$`)
	b64 := regexp.MustCompile(`^[A-Za-z0-9+/]+={0,2}$`)
	oldB64 := func(s string) bool {
		if len(s)%4 != 0 || !b64.MatchString(s) {
			return false
		}
		_, err := base64.StdEncoding.DecodeString(s)
		return err == nil
	}
	cases := []string{"", "0b9f5c3e-8a1d-4f6b-b2c7-5d4e3f2a1b0c", "0B9F5C3E-8A1D-4F6B-B2C7-5D4E3F2A1B0C",
		"0b9f5c3e-8a1d-4f6b-b2c7-5d4e3f2a1b0", "0b9f5c3e-8a1d-4f6b-b2c7-5d4e3f2a1b0cc", "0b9f5c3e_8a1d-4f6b-b2c7-5d4e3f2a1b0c",
		"zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", "dGVzdA==", "dGVzdA=", "dGVzdA", "====", "QQ==", "QR==", "QUJD", "QU\nJD",
		"QUJD\n", "QU=D", "a+/=", "a+/b", "ab==cd==", "é===", "\x00\x00\x00\x00"}
	rng := rand.New(rand.NewSource(1))
	alphabet := "abcz09AZ+/=-_\n\r é"
	for i := 0; i < 200000; i++ {
		n := rng.Intn(40)
		if i%3 == 0 {
			n = 36
		}
		b := make([]rune, n)
		for j := range b {
			b[j] = []rune(alphabet)[rng.Intn(len([]rune(alphabet)))]
		}
		if n == 36 && i%2 == 0 {
			b[8], b[13], b[18], b[23] = '-', '-', '-', '-'
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		if got, want := IsLowerUUID(s), uuid.MatchString(s); got != want {
			t.Errorf("IsLowerUUID(%q) = %v, pattern says %v", s, got, want)
		}
		if got, want := IsStdBase64(s), oldB64(s); got != want {
			t.Errorf("IsStdBase64(%q) = %v, pattern says %v", s, got, want)
		}
	}
}
