// Package tlsutil creates and loads the server's TLS certificate and builds
// verifying client configurations.
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
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ppml-project/ppml/internal/atomicfile"
)

// EnsureSelfSigned returns the certificate in dir/server.crt and
// dir/server.key, creating one if none exists or the existing one expires
// within a week: an ECDSA P-256 leaf (not a CA; valid one year, for
// localhost, 127.0.0.1, ::1 and the host name) signed by a separate
// self-signed CA (dir/ca.crt, its key dir/ca.key; valid ten years and kept
// across renewals, so clients keep trusting it). server.crt holds the leaf
// followed by the CA, so it still works as a client's --ca-file; ca.crt is
// the CA alone.
func EnsureSelfSigned(dir string) (cert tls.Certificate, certPath string, created bool, err error) {
	certPath, keyPath := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		if c.Leaf != nil && time.Until(c.Leaf.NotAfter) > 7*24*time.Hour {
			return c, certPath, false, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return cert, certPath, false, fmt.Errorf("loading %s: %w (delete both files to regenerate)", certPath, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return cert, certPath, false, err
	}
	ca, caKey, err := ensureCA(dir)
	if err != nil {
		return cert, certPath, false, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return cert, certPath, false, err
	}
	host, _ := os.Hostname()
	dns := []string{"localhost"}
	if host != "" && host != "localhost" {
		dns = append(dns, host)
	}
	notAfter := time.Now().Add(365 * 24 * time.Hour)
	if ca.NotAfter.Before(notAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "ppml server", Organization: []string{"ppml"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		DNSNames:              dns,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return cert, certPath, false, err
	}
	if err := writePair(keyPath, key, certPath, der, ca.Raw); err != nil {
		return cert, certPath, false, err
	}
	cert, err = tls.LoadX509KeyPair(certPath, keyPath)
	return cert, certPath, true, err
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// ensureCA loads dir/ca.crt and dir/ca.key, or creates them when both are
// missing or the CA expires within 30 days. A damaged, mismatched or
// half-present pair is an error, not silently replaced: clients pin this
// CA, and a new one would break them without a word.
func ensureCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	crtPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	_, crtErr := os.Stat(crtPath)
	_, keyErr := os.Stat(keyPath)
	if !errors.Is(crtErr, os.ErrNotExist) || !errors.Is(keyErr, os.ErrNotExist) {
		const fix = "restore it from a backup, or delete ca.crt and ca.key to create a new CA (clients must then trust the new ca.crt)"
		pair, err := tls.LoadX509KeyPair(crtPath, keyPath)
		if err != nil {
			return nil, nil, fmt.Errorf("the self-signed CA in %s cannot be loaded: %w; %s", dir, err, fix)
		}
		k, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
		if pair.Leaf == nil || !pair.Leaf.IsCA || !ok {
			return nil, nil, fmt.Errorf("%s is not an ECDSA CA certificate with its key in ca.key; %s", crtPath, fix)
		}
		if time.Until(pair.Leaf.NotAfter) > 30*24*time.Hour {
			return pair.Leaf, k, nil
		}
		// Expiring: replaced below, as documented (clients must trust the new one).
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "ppml self-signed CA", Organization: []string{"ppml"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // signs leaves only
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	if err := writePair(keyPath, key, crtPath, der); err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, err
}

// Fingerprint is the SHA-256 of the leaf certificate, colon-separated hex.
func Fingerprint(c tls.Certificate) string {
	if len(c.Certificate) == 0 {
		return ""
	}
	sum := sha256.Sum256(c.Certificate[0])
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// writePair writes key (PKCS#8 PEM) and the certificates (PEM, in order),
// each file atomically and 0600.
func writePair(keyPath string, key *ecdsa.PrivateKey, certPath string, certs ...[]byte) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	var bundle []byte
	for _, der := range certs {
		bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return atomicfile.WriteFile(certPath, bundle, 0o600)
}

// ClientConfig returns a verifying TLS client configuration: the system
// roots (and SSL_CERT_FILE) plus, if caFile is set, the certificates in it.
func ClientConfig(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil
	}
	pemData, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading --ca-file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("--ca-file %s holds no PEM certificate", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}
