package bigdlkms

import (
	"encoding/base64"
	"testing"
)

// Vectors from bigdl-kms-protocol.md §3.
func TestReferenceVectors(t *testing.T) {
	for in, want := range map[string]string{"alice": "Y4TishhLy/WOzPEMp6ZWPA==", "s3cr3t-token": "6HrTQh4gDyciapZJETFceA==",
		"pk1": "98/QHOSQ/dQhu9yNOjXP0A==", "dk-0001": "WRbNuYdMMYhtDU32DM3UKQ=="} {
		if got := Hash(in); got != want {
			t.Errorf("Hash(%q) = %s, want %s", in, got, want)
		}
	}
	key, _ := base64.StdEncoding.DecodeString("IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=")
	wrapped, _ := base64.StdEncoding.DecodeString("ydIUJRWC6uEsi2EU/hF63PDfKcpdszDiTwohk2GOor0=")
	got, err := UnwrapECB(key, wrapped)
	if err != nil || base64.StdEncoding.EncodeToString(got) != "q83vEjRWeJCrze8SNFZ4kA==" {
		t.Fatalf("UnwrapECB: %x %v", got, err)
	}
	if _, err := UnwrapECB(key[:16], wrapped); err == nil {
		t.Fatal("wrong key unwrapped with valid padding")
	}
}
