package shamir

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// Vector from bigdl-kms-protocol.md §4.4: fixed polynomials for secret "Hi".
func TestReferenceVector(t *testing.T) {
	coefs := [][]byte{{0x48, 0x01, 0x02}, {0x69, 0x03, 0x04}}
	want := []string{"4b6e", "427f", "4178", "6c25", "6f22"}
	var shares []Share
	for x := byte(1); x <= 5; x++ {
		y := []byte{eval(coefs[0], x), eval(coefs[1], x)}
		if got := hex.EncodeToString(y); got != want[x-1] {
			t.Fatalf("share %d = %s, want %s", x, got, want[x-1])
		}
		shares = append(shares, Share{X: x, Y: y})
	}
	for _, pick := range [][]int{{0, 1, 2}, {0, 2, 4}, {1, 3, 4}, {4, 3, 2}} {
		sub := []Share{shares[pick[0]], shares[pick[1]], shares[pick[2]]}
		got, err := Combine(sub)
		if err != nil || string(got) != "Hi" {
			t.Fatalf("combine %v = %q, %v", pick, got, err)
		}
	}
}

func TestSplitCombineRandom(t *testing.T) {
	secret := []byte("q83vEjRWeJCrze8SNFZ4kAq83vEjRWeJCrze8SNFZ4k=")
	shares, err := Split(secret, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Combine([]Share{shares[4], shares[1], shares[2]})
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("combine: %q %v", got, err)
	}
	two, _ := Combine(shares[:2])
	if bytes.Equal(two, secret) {
		t.Fatal("two shares recovered a threshold-3 secret")
	}
	if _, err := Combine([]Share{shares[0], shares[0], shares[1]}); err == nil {
		t.Fatal("duplicate index accepted")
	}
	if _, err := Split(secret, 2, 3); err == nil {
		t.Fatal("threshold above share count accepted")
	}
}

func TestFieldInverse(t *testing.T) {
	for b := 1; b < 256; b++ {
		if mul(byte(b), div(1, byte(b))) != 1 {
			t.Fatalf("inverse of %d wrong", b)
		}
	}
}
