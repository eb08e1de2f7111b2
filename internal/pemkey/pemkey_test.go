package pemkey

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func block(typ string, der []byte, headers ...string) []byte {
	b := &pem.Block{Type: typ, Bytes: der, Headers: map[string]string{}}
	for i := 0; i+1 < len(headers); i += 2 {
		b.Headers[headers[i]] = headers[i+1]
	}
	return pem.EncodeToMemory(b)
}

func TestParseForms(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pk8RSA, _ := x509.MarshalPKCS8PrivateKey(rk)
	pk8EC, _ := x509.MarshalPKCS8PrivateKey(ek)
	sec1, _ := x509.MarshalECPrivateKey(ek)
	params := block("EC PARAMETERS", []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7})
	cert := block("CERTIFICATE", []byte{0x30, 0})

	for name, in := range map[string][]byte{
		"PKCS #1":                      block("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)),
		"PKCS #8":                      block("PRIVATE KEY", pk8RSA),
		"after a certificate and junk": append(append([]byte("junk\n"), cert...), block("PRIVATE KEY", pk8RSA)...),
	} {
		k, err := ParseRSA(in)
		if err != nil || !k.Equal(rk) {
			t.Errorf("ParseRSA %s: %v", name, err)
		}
		s, err := Parse(in)
		if err != nil || !rk.Equal(s) {
			t.Errorf("Parse %s: %v", name, err)
		}
	}
	for name, in := range map[string][]byte{
		"SEC 1 after EC PARAMETERS": append(params, block("EC PRIVATE KEY", sec1)...),
		"PKCS #8":                   block("PRIVATE KEY", pk8EC),
	} {
		s, err := Parse(in)
		if err != nil || !ek.Equal(s) {
			t.Errorf("Parse %s: %v", name, err)
		}
		if _, err := ParseRSA(in); err == nil || err.Error() != "an ECDSA key, want RSA: give an RSA private key" {
			t.Errorf("ParseRSA %s: %v", name, err)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	_, edk, _ := ed25519.GenerateKey(rand.Reader)
	pk8Ed, _ := x509.MarshalPKCS8PrivateKey(edk)
	for _, c := range []struct {
		name string
		in   []byte
		want string // both decoders; ParseRSA names fewer block types
	}{
		{"not PEM", []byte("not pem"), "no PEM private key block ("},
		{"only a certificate", block("CERTIFICATE", []byte{0x30, 0}), "no PEM private key block ("},
		{"PKCS #8 encrypted", block("ENCRYPTED PRIVATE KEY", []byte{0x30, 0}), "the private key is encrypted: give it unencrypted"},
		{"legacy encrypted", block("RSA PRIVATE KEY", []byte{1, 2}, "Proc-Type", "4,ENCRYPTED", "DEK-Info", "AES-256-CBC,00"), "the private key is encrypted: give it unencrypted"},
		{"damaged PKCS #1", block("RSA PRIVATE KEY", []byte{0x30, 3, 1, 2, 3}), `PEM block "RSA PRIVATE KEY" is not a PKCS #1 private key (`},
		{"damaged PKCS #8", block("PRIVATE KEY", []byte("xx")), `PEM block "PRIVATE KEY" is not a PKCS #8 private key (`},
		{"Ed25519", block("PRIVATE KEY", pk8Ed), "an Ed25519 key, want RSA"},
	} {
		_, err1 := Parse(c.in)
		_, err2 := ParseRSA(c.in)
		for _, err := range []error{err1, err2} {
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("%s: %v, want %q...", c.name, err, c.want)
			}
		}
	}
	if _, err := ParseRSA([]byte("x")); err == nil || !strings.Contains(err.Error(), `("PRIVATE KEY" or "RSA PRIVATE KEY")`) {
		t.Errorf("ParseRSA names the RSA block types: %v", err)
	}
}
