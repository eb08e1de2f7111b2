package material

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"

	"github.com/ppml-project/ppml/internal/pemkey"
)

// File names inside the ssl-password Secret (and the password folder).
const (
	KeyTxtFile           = "key.txt"
	OutputBinFile        = "output.bin"
	PasswordManifest     = "password.yaml"
	SparkSecretManifest  = "spark-secret.yaml"
	SparkSecretKey       = "secret"
	MinPasswordLen       = 6   // keytool refuses shorter store passwords
	MaxPasswordLen       = 244 // RSA-2048 PKCS#1 v1.5 fits 245 bytes: password + "\n"
	passwordKeyBits      = 2048
	passwordTrailingByte = '\n'
)

// Errors returned by ValidatePassword (wrapped with details).
var (
	ErrEmptyPassword = errors.New("password is empty")
	ErrBadPassword   = errors.New("password rejected")
)

// ValidatePassword checks that the password can be used everywhere the
// images use it: the JKS store (Java reads it as UTF-16 chars; keystore-go
// encodes bytes, so only ASCII round-trips), keytool (at least 6
// characters), output.bin (at most 244 bytes with the trailing newline in one
// RSA-2048 block) and shell exports (no control characters). The error never
// contains the password.
func ValidatePassword(pw []byte) error {
	if len(pw) == 0 {
		return ErrEmptyPassword
	}
	if len(pw) < MinPasswordLen {
		return fmt.Errorf("%w: it has %d characters, keytool needs at least %d", ErrBadPassword, len(pw), MinPasswordLen)
	}
	if len(pw) > MaxPasswordLen {
		return fmt.Errorf("%w: it has %d bytes, at most %d fit in output.bin", ErrBadPassword, len(pw), MaxPasswordLen)
	}
	for i, c := range pw {
		if c < 0x20 || c > 0x7e {
			return fmt.Errorf("%w: byte %d is not printable ASCII (Java key stores and shell exports need printable ASCII)", ErrBadPassword, i+1)
		}
	}
	return nil
}

// PasswordFiles is the content of the ssl-password Secret.
type PasswordFiles struct {
	KeyTxt    []byte // RSA-2048 private key, PKCS#8 PEM ("PRIVATE KEY"), as OpenSSL 3 genrsa writes it
	OutputBin []byte // RSA PKCS#1 v1.5 encryption of password + "\n" with KeyTxt's key
}

// Files returns the Secret keys / file names and their contents.
func (p *PasswordFiles) Files() map[string][]byte {
	return map[string][]byte{KeyTxtFile: p.KeyTxt, OutputBinFile: p.OutputBin}
}

// GeneratePasswordFiles creates key.txt and output.bin for the password.
// rnd is crypto/rand.Reader when nil.
func GeneratePasswordFiles(password []byte, rnd io.Reader) (*PasswordFiles, error) {
	if err := ValidatePassword(password); err != nil {
		return nil, err
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	key, err := rsa.GenerateKey(rnd, passwordKeyBits)
	if err != nil {
		return nil, fmt.Errorf("generate RSA-%d key: %w", passwordKeyBits, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key.txt: %w", err)
	}
	msg := make([]byte, 0, len(password)+1)
	msg = append(append(msg, password...), passwordTrailingByte)
	defer clear(msg)
	// PKCS #1 v1.5 because the images decrypt output.bin with `openssl rsautl
	// -decrypt`, whose default padding it is (bigdl-kubernetes-contract.md).
	ct, err := rsa.EncryptPKCS1v15(rnd, &key.PublicKey, msg)
	if err != nil {
		return nil, fmt.Errorf("encrypt password into output.bin: %w", err)
	}
	return &PasswordFiles{
		KeyTxt:    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		OutputBin: ct,
	}, nil
}

// RecoverPassword does what the images do with /ppml/password: decrypt
// output.bin with key.txt (PKCS#1 or PKCS#8 PEM) using RSA PKCS#1 v1.5 and
// strip trailing newlines.
func RecoverPassword(keyTxt, outputBin []byte) ([]byte, error) {
	key, err := pemkey.ParseRSA(keyTxt)
	if err != nil {
		return nil, fmt.Errorf("key.txt: %w", err)
	}
	pt, err := rsa.DecryptPKCS1v15(nil, key, outputBin) //nolint:staticcheck // the images' format
	if err != nil {
		return nil, fmt.Errorf("decrypt output.bin: %w", err)
	}
	return bytes.TrimRight(pt, "\r\n"), nil
}
