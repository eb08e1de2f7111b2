// Package release is the attested key release suite both sides use: the
// KMS seals a released data key to the workload's X25519 public key (the
// runtime data its quote committed to), the workload opens it. HPKE (RFC
// 9180) with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM; the
// info string binds the key id.
package release

import (
	"crypto/ecdh"
	"crypto/hpke"
	"errors"
)

var (
	kem  = hpke.DHKEM(ecdh.X25519())
	kdf  = hpke.HKDFSHA256()
	aead = hpke.AES256GCM()
)

// Info is the HPKE info string of a release of keyID.
func Info(keyID string) []byte { return []byte("ppml key release v1\x00" + keyID) }

// PublicKey reads the workload's public key from the runtime data (32
// bytes of X25519).
func PublicKey(runtimeData []byte) (hpke.PublicKey, error) { return kem.NewPublicKey(runtimeData) }

// Seal seals a data key of keyID to the workload's public key.
func Seal(pub hpke.PublicKey, keyID string, dataKey []byte) ([]byte, error) {
	return hpke.Seal(pub, kdf, aead, Info(keyID), dataKey)
}

// Open is the workload's side: it opens a released key with the X25519
// private key whose public half was the runtime data.
func Open(priv *ecdh.PrivateKey, keyID string, sealed []byte) ([]byte, error) {
	k, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pt, err := hpke.Open(k, kdf, aead, Info(keyID), sealed)
	if err != nil {
		return nil, errors.New("the released key does not open with this workload's private key")
	}
	return pt, nil
}
