package material

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"time"

	"github.com/pavlo-v-chernykh/keystore-go/v4"
	"software.sslmate.com/src/go-pkcs12"
)

// File names inside the ssl-keys Secret (and the keys folder).
const (
	ServerKeyFile = "server.key"
	ServerCSRFile = "server.csr"
	ServerCRTFile = "server.crt"
	ServerPEMFile = "server.pem"
	PKCS12File    = "keystore.pkcs12"
	JKSFile       = "keystore.jks"
	KeysManifest  = "keys.yaml"
	KeystoreAlias = "1" // entry alias: keytool names the PKCS#12 entry "1", as upstream JKS files have it (not significant to consumers)
	DefaultCN     = "ppml"
	DefaultDays   = 365 // not upstream's 9999 days
	ServerKeyBits = 3072
)

// KeysOptions configures GenerateKeys.
type KeysOptions struct {
	// Password protects keystore.pkcs12 and keystore.jks. Required; see
	// ValidatePassword.
	Password []byte
	// CommonName is the certificate subject CN; DefaultCN when empty.
	CommonName string
	// DNSNames and IPs are the subjectAltNames. When both are empty and
	// CommonName is a valid DNS name, CommonName is used as the only DNS SAN
	// (TLS clients ignore the CN for hostname checks).
	DNSNames []string
	IPs      []net.IP
	// Days is the certificate validity; DefaultDays when zero.
	Days int
	// OmitPlainKey leaves out server.key and server.pem, the unencrypted
	// copies of the private key (the key stores are all Spark and the BigDL
	// KMS read).
	OmitPlainKey bool

	// Rand and Now are for tests; crypto/rand and time.Now when nil.
	Rand io.Reader
	Now  func() time.Time
}

// Keys is the content of the ssl-keys Secret.
type Keys struct {
	ServerKey []byte // PKCS#8 PEM, unencrypted (nil with OmitPlainKey)
	ServerCSR []byte // PKCS#10 PEM
	ServerCRT []byte // X.509 PEM
	ServerPEM []byte // ServerKey followed by ServerCRT (nil with OmitPlainKey)
	PKCS12    []byte // keystore.pkcs12
	JKS       []byte // keystore.jks

	Certificate *x509.Certificate
}

// Files returns the Secret keys / file names and their contents.
func (k *Keys) Files() map[string][]byte {
	m := map[string][]byte{
		ServerCSRFile: k.ServerCSR,
		ServerCRTFile: k.ServerCRT,
		PKCS12File:    k.PKCS12,
		JKSFile:       k.JKS,
	}
	if k.ServerKey != nil {
		m[ServerKeyFile] = k.ServerKey
	}
	if k.ServerPEM != nil {
		m[ServerPEMFile] = k.ServerPEM
	}
	return m
}

// GenerateKeys creates an RSA-3072 key, a CSR and a self-signed certificate
// for it, and the PKCS#12 and JKS key stores holding key and certificate.
func GenerateKeys(opts KeysOptions) (*Keys, error) {
	if err := ValidatePassword(opts.Password); err != nil {
		return nil, err
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	cn := strings.TrimSpace(opts.CommonName)
	if cn == "" {
		cn = DefaultCN
	}
	days := opts.Days
	if days == 0 {
		days = DefaultDays
	}
	if days < 0 {
		return nil, fmt.Errorf("certificate validity must be positive, got %d days", days)
	}
	dnsNames := make([]string, 0, len(opts.DNSNames)+1)
	for _, d := range opts.DNSNames {
		d = strings.TrimSpace(d)
		if !validDNSName(d) {
			return nil, fmt.Errorf("invalid DNS name %q for the certificate", d)
		}
		dnsNames = append(dnsNames, d)
	}
	ips := append([]net.IP(nil), opts.IPs...)
	for _, ip := range ips {
		if ip == nil {
			return nil, errors.New("invalid (nil) IP address for the certificate")
		}
	}
	if len(dnsNames) == 0 && len(ips) == 0 && validDNSName(cn) {
		dnsNames = append(dnsNames, cn)
	}

	key, err := rsa.GenerateKey(rnd, ServerKeyBits)
	if err != nil {
		return nil, fmt.Errorf("generate RSA-%d key: %w", ServerKeyBits, err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	subject := pkix.Name{CommonName: cn}

	csrDER, err := x509.CreateCertificateRequest(rnd, &x509.CertificateRequest{
		Subject:     subject,
		DNSNames:    dnsNames,
		IPAddresses: ips,
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}

	serial, err := rand.Int(rnd, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	serial.Add(serial, big.NewInt(1)) // never zero
	t0 := now().Add(-5 * time.Minute).UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             t0,
		NotAfter:              t0.Add(time.Duration(days) * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	certDER, err := x509.CreateCertificate(rnd, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create self-signed certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("parse generated certificate: %w", err)
	}

	p12, err := pkcs12.Modern.WithRand(rnd).Encode(key, cert, nil, string(opts.Password))
	if err != nil {
		return nil, fmt.Errorf("encode keystore.pkcs12: %w", err)
	}

	ks := keystore.New(keystore.WithCustomRandomNumberGenerator(rnd))
	if err := ks.SetPrivateKeyEntry(KeystoreAlias, keystore.PrivateKeyEntry{
		CreationTime:     t0,
		PrivateKey:       pkcs8,
		CertificateChain: []keystore.Certificate{{Type: "X509", Content: certDER}},
	}, opts.Password); err != nil {
		return nil, fmt.Errorf("add key to keystore.jks: %w", err)
	}
	var jks bytes.Buffer
	if err := ks.Store(&jks, opts.Password); err != nil {
		return nil, fmt.Errorf("encode keystore.jks: %w", err)
	}

	k := &Keys{
		ServerCSR:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}),
		ServerCRT:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}),
		PKCS12:      p12,
		JKS:         jks.Bytes(),
		Certificate: cert,
	}
	if !opts.OmitPlainKey {
		k.ServerKey = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
		k.ServerPEM = append(append([]byte(nil), k.ServerKey...), k.ServerCRT...)
	}
	return k, nil
}

// validDNSName accepts host names and wildcard host names (RFC 1123 labels).
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	s = strings.TrimPrefix(s, "*.")
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
