// Package shamir splits and combines secrets with Shamir's scheme over
// GF(2^8), byte for byte compatible with codahale/shamir 0.7.0, the library
// BigDL's KMS uses for its root-key shares (bigdl-kms-protocol.md §4.4).
//
// It is hand-written because no maintained Go library produces that exact
// share layout (HashiCorp Vault's appends the x-coordinate to every share).
package shamir

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
)

// Share is one point set: X is the share index (1..255), Y one value per
// secret byte.
type Share struct {
	X byte
	Y []byte
}

// Split divides secret into n shares of which any k recover it. Every
// secret byte gets an independent random polynomial of degree exactly k-1.
func Split(secret []byte, n, k int) ([]Share, error) {
	return split(rand.Reader, secret, n, k)
}

func split(rnd io.Reader, secret []byte, n, k int) ([]Share, error) {
	if k < 2 || n < k || n > 255 {
		return nil, fmt.Errorf("shamir: need 2 <= threshold (%d) <= shares (%d) <= 255", k, n)
	}
	if len(secret) == 0 {
		return nil, errors.New("shamir: empty secret")
	}
	shares := make([]Share, n)
	for i := range shares {
		shares[i] = Share{X: byte(i + 1), Y: make([]byte, len(secret))}
	}
	coef := make([]byte, k)
	for j, s := range secret {
		coef[0] = s
		if _, err := io.ReadFull(rnd, coef[1:]); err != nil {
			return nil, fmt.Errorf("shamir: reading randomness: %w", err)
		}
		for coef[k-1] == 0 { // degree must be exactly k-1
			if _, err := io.ReadFull(rnd, coef[k-1:]); err != nil {
				return nil, fmt.Errorf("shamir: reading randomness: %w", err)
			}
		}
		for i := range shares {
			shares[i].Y[j] = eval(coef, shares[i].X)
		}
	}
	return shares, nil
}

// Combine interpolates the shares at x = 0. It cannot tell a wrong share from
// a right one; callers check the result (e.g. against a key check value).
func Combine(shares []Share) ([]byte, error) {
	if len(shares) < 2 {
		return nil, fmt.Errorf("shamir: need at least 2 shares, got %d", len(shares))
	}
	size := len(shares[0].Y)
	seen := map[byte]bool{}
	for _, s := range shares {
		if s.X == 0 {
			return nil, errors.New("shamir: share index 0 is not valid")
		}
		if seen[s.X] {
			return nil, fmt.Errorf("shamir: share index %d given twice", s.X)
		}
		seen[s.X] = true
		if len(s.Y) != size || size == 0 {
			return nil, errors.New("shamir: shares have different or zero lengths")
		}
	}
	out := make([]byte, size)
	for j := range out {
		var acc byte
		for i, si := range shares {
			// Lagrange basis polynomial for si evaluated at 0.
			num, den := byte(1), byte(1)
			for m, sm := range shares {
				if m == i {
					continue
				}
				num = mul(num, sm.X)
				den = mul(den, sm.X^si.X)
			}
			acc ^= mul(si.Y[j], div(num, den))
		}
		out[j] = acc
	}
	return out, nil
}

// eval computes the polynomial (constant term first) at x with Horner's rule.
func eval(coef []byte, x byte) byte {
	var r byte
	for i := len(coef) - 1; i >= 0; i-- {
		r = mul(r, x) ^ coef[i]
	}
	return r
}

// mul multiplies in GF(2^8) modulo x^8+x^4+x^3+x+1 (0x11B), in constant time.
func mul(a, b byte) byte {
	var p byte
	for i := 0; i < 8; i++ {
		p ^= -(b & 1) & a
		hi := -(a >> 7)
		a = (a << 1) ^ (hi & 0x1B)
		b >>= 1
	}
	return p
}

// div computes a / b as a * b^254 (b^-1 in GF(2^8)); b is never 0 here.
func div(a, b byte) byte {
	inv := byte(1)
	for i := 0; i < 254; i++ {
		inv = mul(inv, b)
	}
	return mul(a, inv)
}
