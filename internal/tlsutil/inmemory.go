package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"time"
)

// InMemory returns a self-signed ECDSA P-256 certificate (valid 90 days,
// for dnsNames, 127.0.0.1 and ::1) whose private key exists only in this
// process: inside an enclave, the host never sees it. Clients verify the
// server by attestation: the self-quote binds KeyHash of this certificate.
// certPEM is the public certificate, for clients that pin it.
func InMemory(dnsNames []string) (cert tls.Certificate, certPEM []byte, err error) {
	if len(dnsNames) == 0 {
		return cert, nil, errors.New("tls: an in-memory certificate needs at least one DNS name (--tls-dns)")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return cert, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "ppml in-enclave key", Organization: []string{"ppml"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(90 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // clients may pin this file as --ca-file
		DNSNames:              dnsNames,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return cert, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return cert, nil, err
	}
	cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// KeyHash is SHA-256 of a certificate's SubjectPublicKeyInfo: what a
// self-quote binds so a client knows the TLS key it talks to is the
// enclave's (RA-TLS).
func KeyHash(c *x509.Certificate) [32]byte { return sha256.Sum256(c.RawSubjectPublicKeyInfo) }
