package material

import (
	"bytes"
	"crypto"
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

	"github.com/ppml-project/ppml/internal/pemkey"
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
	// CertPEM and KeyPEM, when set, are an operator-supplied (for example
	// CA-signed) certificate chain, leaf first, and its unencrypted private
	// key (RSA or ECDSA; PKCS#8, PKCS#1 or SEC 1 PEM). They replace the
	// generated key and self-signed certificate; CommonName, DNSNames, IPs
	// and Days must then be unset.
	CertPEM, KeyPEM []byte
	// IncludePlainKey adds server.key and server.pem, unencrypted copies of
	// the private key. They are left out by default: Spark and the BigDL KMS
	// read only the key stores; ppml serve's own pods read server.key.
	IncludePlainKey bool

	// Rand and Now are for tests; crypto/rand and time.Now when nil.
	Rand io.Reader
	Now  func() time.Time
}

// Keys is the content of the ssl-keys Secret.
type Keys struct {
	ServerKey []byte // PKCS#8 PEM, unencrypted (nil unless IncludePlainKey)
	ServerCSR []byte // PKCS#10 PEM
	ServerCRT []byte // X.509 PEM: the certificate, then any chain certificates
	ServerPEM []byte // ServerKey followed by ServerCRT (nil unless IncludePlainKey)
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
// for it (or takes the operator's certificate and key, see
// KeysOptions.CertPEM), and the PKCS#12 and JKS key stores holding key and
// certificate chain.
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
	var (
		key   crypto.Signer
		chain []*x509.Certificate
		err   error
	)
	if opts.CertPEM != nil || opts.KeyPEM != nil {
		key, chain, err = suppliedCertificate(opts, now())
	} else {
		key, chain, err = selfSigned(opts, rnd, now())
	}
	if err != nil {
		return nil, err
	}
	cert := chain[0]
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}

	csrDER, err := x509.CreateCertificateRequest(rnd, &x509.CertificateRequest{
		Subject:     cert.Subject,
		DNSNames:    cert.DNSNames,
		IPAddresses: cert.IPAddresses,
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}

	p12, err := pkcs12.Modern.WithRand(rnd).Encode(key, cert, chain[1:], string(opts.Password))
	if err != nil {
		return nil, fmt.Errorf("encode keystore.pkcs12: %w", err)
	}

	jchain := make([]keystore.Certificate, len(chain))
	var crt []byte
	for i, c := range chain {
		jchain[i] = keystore.Certificate{Type: "X509", Content: c.Raw}
		crt = append(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	ks := keystore.New(keystore.WithCustomRandomNumberGenerator(rnd))
	if err := ks.SetPrivateKeyEntry(KeystoreAlias, keystore.PrivateKeyEntry{
		CreationTime:     now().UTC().Truncate(time.Second),
		PrivateKey:       pkcs8,
		CertificateChain: jchain,
	}, opts.Password); err != nil {
		return nil, fmt.Errorf("add key to keystore.jks: %w", err)
	}
	var jks bytes.Buffer
	if err := ks.Store(&jks, opts.Password); err != nil {
		return nil, fmt.Errorf("encode keystore.jks: %w", err)
	}

	k := &Keys{
		ServerCSR:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}),
		ServerCRT:   crt,
		PKCS12:      p12,
		JKS:         jks.Bytes(),
		Certificate: cert,
	}
	if opts.IncludePlainKey {
		k.ServerKey = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
		k.ServerPEM = append(append([]byte(nil), k.ServerKey...), k.ServerCRT...)
	}
	return k, nil
}

// selfSigned generates the RSA-3072 key and the self-signed certificate.
func selfSigned(opts KeysOptions, rnd io.Reader, now time.Time) (crypto.Signer, []*x509.Certificate, error) {
	cn := strings.TrimSpace(opts.CommonName)
	if cn == "" {
		cn = DefaultCN
	}
	days := opts.Days
	if days == 0 {
		days = DefaultDays
	}
	if days < 0 {
		return nil, nil, fmt.Errorf("certificate validity must be positive, got %d days", days)
	}
	dnsNames := make([]string, 0, len(opts.DNSNames)+1)
	for _, d := range opts.DNSNames {
		d = strings.TrimSpace(d)
		if !validDNSName(d) {
			return nil, nil, fmt.Errorf("invalid DNS name %q for the certificate", d)
		}
		dnsNames = append(dnsNames, d)
	}
	ips := append([]net.IP(nil), opts.IPs...)
	for _, ip := range ips {
		if ip == nil {
			return nil, nil, errors.New("invalid (nil) IP address for the certificate")
		}
	}
	if len(dnsNames) == 0 && len(ips) == 0 && validDNSName(cn) {
		dnsNames = append(dnsNames, cn)
	}

	key, err := rsa.GenerateKey(rnd, ServerKeyBits)
	if err != nil {
		return nil, nil, fmt.Errorf("generate RSA-%d key: %w", ServerKeyBits, err)
	}
	serial, err := rand.Int(rnd, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("certificate serial: %w", err)
	}
	serial.Add(serial, big.NewInt(1)) // never zero
	t0 := now.Add(-5 * time.Minute).UTC().Truncate(time.Second)
	subject := pkix.Name{CommonName: cn}
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
		return nil, nil, fmt.Errorf("create self-signed certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, nil, fmt.Errorf("parse generated certificate: %w", err)
	}
	return key, []*x509.Certificate{cert}, nil
}

// suppliedCertificate parses and checks the operator's certificate chain
// and private key.
func suppliedCertificate(opts KeysOptions, now time.Time) (crypto.Signer, []*x509.Certificate, error) {
	if opts.CertPEM == nil || opts.KeyPEM == nil {
		return nil, nil, errors.New("an operator-supplied certificate needs both the certificate and its private key")
	}
	if opts.CommonName != "" || len(opts.DNSNames) > 0 || len(opts.IPs) > 0 || opts.Days != 0 {
		return nil, nil, errors.New("common name, DNS names, IP addresses and validity come from the supplied certificate; do not set them too")
	}
	var chain []*x509.Certificate
	rest := opts.CertPEM
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("certificate %d of the supplied chain: %w", len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, nil, errors.New("the supplied certificate file holds no PEM CERTIFICATE block")
	}
	key, err := pemkey.Parse(opts.KeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("supplied private key: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(chain[0].PublicKey) {
		return nil, nil, errors.New("the supplied private key does not match the first certificate of the chain")
	}
	if now.After(chain[0].NotAfter) {
		return nil, nil, fmt.Errorf("the supplied certificate expired on %s", chain[0].NotAfter.UTC().Format(time.RFC3339))
	}
	for i := 1; i < len(chain); i++ {
		if err := chain[i-1].CheckSignatureFrom(chain[i]); err != nil {
			return nil, nil, fmt.Errorf("supplied chain: certificate %d is not signed by certificate %d: %w", i, i+1, err)
		}
	}
	return key, chain, nil
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
