package ehsm

import (
	"encoding/json"
	"testing"

	"github.com/ppml-project/ppml/wire/ehsmsig"
)

// The VerifyQuote result map, as Handle builds it, signs like the vectors of
// ehsm-protocol.md §8.3.
func TestVerifyQuoteSignVectors(t *testing.T) {
	key := []byte("Q7mZp2Kx9VbT4nHc8RwLs3YjF6dGu1Ae")
	for result, want := range map[string]string{"0": "fnrcaewGFbdQZDDjIg0+FEGFCkqq/utmojQ3ILunFfY=", "40962": "N+BySn2RR20aMFOUnirZ7KkKFG/rewCOMpCM4KRybFM="} {
		res := map[string]any{"result": json.Number(result), "nonce": "test",
			"mr_enclave": "68823bc62f409ee33a32ea270cfe45d4b19a6fb3c8570d7bc186cbe062398e8f",
			"mr_signer":  "9affcfae47b848ec2caf1c49b4b283531e1cc425f93582b36806e52a43d78d1a"}
		if got := ehsmsig.Sign(key, ehsmsig.Canonical(res)); got != want {
			t.Errorf("result %s: sign %s, want %s", result, got, want)
		}
	}
}
