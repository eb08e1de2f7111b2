package sigstruct

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"

	"github.com/ppml-project/ppml/internal/atomicfile"
	"github.com/ppml-project/ppml/internal/pemkey"
)

// PEMType is the PEM block of an enclave key: PKCS #1, as
// gramine-sgx-gen-private-key writes it.
const PEMType = "RSA PRIVATE KEY"

// GenerateKey returns a new enclave signing key: RSA-3072, public exponent
// 3. crypto/rsa only generates keys with exponent 65537, so the primes are
// drawn here (crypto/rand.Prime) with p ≡ q ≡ 2 (mod 3), which makes 3
// invertible modulo (p-1)(q-1); the key is then checked by rsa.Validate.
func GenerateKey() (*rsa.PrivateKey, error) {
	three := big.NewInt(Exponent)
	one := big.NewInt(1)
	prime := func() (*big.Int, error) {
		for {
			p, err := rand.Prime(rand.Reader, KeyBits/2)
			if err != nil {
				return nil, err
			}
			if new(big.Int).Mod(p, three).Int64() == 2 {
				return p, nil
			}
		}
	}
	for {
		p, err := prime()
		if err != nil {
			return nil, fmt.Errorf("enclave key: %w", err)
		}
		q, err := prime()
		if err != nil {
			return nil, fmt.Errorf("enclave key: %w", err)
		}
		if p.Cmp(q) == 0 {
			continue
		}
		n := new(big.Int).Mul(p, q)
		if n.BitLen() != KeyBits {
			continue
		}
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(three, phi)
		if d == nil {
			continue
		}
		k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: Exponent}, D: d, Primes: []*big.Int{p, q}}
		k.Precompute()
		if err := k.Validate(); err != nil {
			return nil, fmt.Errorf("enclave key: generated key does not validate: %w", err)
		}
		return k, nil
	}
}

// CheckKey reports whether pub is a key SGX accepts.
func CheckKey(pub *rsa.PublicKey) error {
	if pub.E != Exponent {
		return fmt.Errorf("enclave key: public exponent %d, SGX requires %d (generate one with ppml enclave key generate)", pub.E, Exponent)
	}
	if pub.N.BitLen() != KeyBits {
		return fmt.Errorf("enclave key: %d-bit modulus, SGX requires %d bits (generate one with ppml enclave key generate)", pub.N.BitLen(), KeyBits)
	}
	return nil
}

// MarshalKey encodes key as PEM.
func MarshalKey(key *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: PEMType, Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

// ParseKey decodes a PEM enclave key (PKCS #1 or PKCS #8) and checks that
// SGX accepts it.
func ParseKey(b []byte) (*rsa.PrivateKey, error) {
	key, err := pemkey.ParseRSA(b)
	if err != nil {
		return nil, fmt.Errorf("enclave key: %w", err)
	}
	if err := CheckKey(&key.PublicKey); err != nil {
		return nil, err
	}
	return key, nil
}

// WriteKeyFile writes key as PEM to path, mode 0600, and refuses to replace
// an existing file: a new key changes MRSIGNER, and every policy and sealed
// file bound to the old one. The file appears complete or not at all.
func WriteKeyFile(path string, key *rsa.PrivateKey) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists: refusing to overwrite an enclave key (a new key changes MRSIGNER); remove it first or choose another --out", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := atomicfile.Create(path, 0o600)
	if err != nil {
		return err
	}
	pemBytes := MarshalKey(key)
	defer clear(pemBytes)
	if _, err := f.Write(pemBytes); err != nil {
		f.Abort()
		return err
	}
	// Link instead of rename: the final step fails, rather than replaces,
	// if a file of that name appeared meanwhile.
	if err := f.Sync(); err != nil {
		f.Abort()
		return err
	}
	tmp := f.Name()
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists: refusing to overwrite an enclave key", path)
		}
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

// LoadKeyFile reads a PEM enclave key.
func LoadKeyFile(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	k, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}
