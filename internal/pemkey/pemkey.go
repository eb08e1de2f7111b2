// Package pemkey decodes unencrypted PEM private keys: PKCS #8 ("PRIVATE
// KEY"), PKCS #1 ("RSA PRIVATE KEY") and SEC 1 ("EC PRIVATE KEY"), as
// OpenSSL, Gramine and Go write them. Its errors say what was wrong with the
// key and what to give instead; callers prefix which key it was.
package pemkey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// Parse returns the first private key in data, RSA or ECDSA. Blocks that
// hold no private key (EC PARAMETERS, certificates) are skipped.
func Parse(data []byte) (crypto.Signer, error) {
	k, err := first(data, `"PRIVATE KEY", "RSA PRIVATE KEY" or "EC PRIVATE KEY"`)
	if err != nil {
		return nil, err
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("an %s key, want RSA or ECDSA: give an RSA or ECDSA private key", kind(k))
}

// ParseRSA returns the first private key in data, which must be RSA.
func ParseRSA(data []byte) (*rsa.PrivateKey, error) {
	k, err := first(data, `"PRIVATE KEY" or "RSA PRIVATE KEY"`)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("an %s key, want RSA: give an RSA private key", kind(k))
	}
	return rk, nil
}

// first decodes the first private key block; want names the block types
// for the error when there is none.
func first(data []byte, want string) (any, error) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, fmt.Errorf("no PEM private key block (%s): give the key in PEM, unencrypted", want)
		}
		var parse func([]byte) (any, error)
		var form string
		switch {
		case b.Type == "ENCRYPTED PRIVATE KEY" || x509.IsEncryptedPEMBlock(b): //nolint:staticcheck // detection only
			return nil, errors.New("the private key is encrypted: give it unencrypted (openssl pkey -in KEY -out PLAIN)")
		case b.Type == "PRIVATE KEY":
			parse, form = x509.ParsePKCS8PrivateKey, "PKCS #8"
		case b.Type == "RSA PRIVATE KEY":
			parse, form = func(d []byte) (any, error) { return x509.ParsePKCS1PrivateKey(d) }, "PKCS #1"
		case b.Type == "EC PRIVATE KEY":
			parse, form = func(d []byte) (any, error) { return x509.ParseECPrivateKey(d) }, "SEC 1"
		default:
			continue
		}
		k, err := parse(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %q is not a %s private key (%v): the key is damaged or of another format", b.Type, form, err)
		}
		return k, nil
	}
}

func kind(k any) string {
	switch k.(type) {
	case ed25519.PrivateKey:
		return "Ed25519"
	case *ecdsa.PrivateKey:
		return "ECDSA"
	}
	return fmt.Sprintf("%T", k)
}
