package material

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pavlo-v-chernykh/keystore-go/v4"
	"software.sslmate.com/src/go-pkcs12"
)

// caSigned returns a leaf certificate chain (leaf, CA) in PEM and the
// leaf's SEC 1 key.
func caSigned(t *testing.T, notAfter time.Time) (chainPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(t, err)
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "bigdl-kms"},
		DNSNames: []string{"bigdl-kms.default.svc"}, NotBefore: time.Now().Add(-47 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	must(t, err)
	kder, _ := x509.MarshalECPrivateKey(leafKey)
	chainPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	return chainPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func TestKeysFromSuppliedCertificate(t *testing.T) {
	chain, key := caSigned(t, time.Now().Add(24*time.Hour))
	k, err := GenerateKeys(KeysOptions{Password: []byte(testPassword), CertPEM: chain, KeyPEM: key, IncludePlainKey: true})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.ServerCRT, chain) {
		t.Fatal("server.crt is not the supplied chain")
	}
	if _, err := tls.X509KeyPair(k.ServerPEM, k.ServerPEM); err != nil {
		t.Fatalf("server.pem: %v", err)
	}
	_, cert, cas, err := pkcs12.DecodeChain(k.PKCS12, testPassword)
	if err != nil || cert.Subject.CommonName != "bigdl-kms" || len(cas) != 1 || cas[0].Subject.CommonName != "Test CA" {
		t.Fatalf("pkcs12 chain: %v", err)
	}
	ks := keystore.New()
	must(t, ks.Load(bytes.NewReader(k.JKS), []byte(testPassword)))
	e, err := ks.GetPrivateKeyEntry(KeystoreAlias, []byte(testPassword))
	if err != nil || len(e.CertificateChain) != 2 {
		t.Fatalf("jks chain: %v", err)
	}
	rb, _ := pem.Decode(k.ServerCSR)
	csr, err := x509.ParseCertificateRequest(rb.Bytes)
	if err != nil || csr.CheckSignature() != nil || csr.Subject.CommonName != "bigdl-kms" || csr.DNSNames[0] != "bigdl-kms.default.svc" {
		t.Fatalf("csr: %v", err)
	}

	{
		keytool := tool(t, "keytool")
		dir := t.TempDir()
		pw := filepath.Join(dir, "pw")
		must(t, os.WriteFile(pw, []byte(testPassword), 0o600))
		for name, data := range map[string][]byte{"k.jks": k.JKS, "k.p12": k.PKCS12} {
			must(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
			out, err := exec.Command(keytool, "-list", "-v", "-keystore", filepath.Join(dir, name), "-storepass:file", pw).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Certificate chain length: 2") {
				t.Fatalf("keytool %s: %v\n%s", name, err, out)
			}
		}
	}

	// Errors.
	other, otherKey := caSigned(t, time.Now().Add(time.Hour))
	for _, c := range []struct {
		opts KeysOptions
		want string
	}{
		{KeysOptions{CertPEM: chain, KeyPEM: otherKey}, "does not match"},
		{KeysOptions{CertPEM: chain}, "needs both"},
		{KeysOptions{CertPEM: chain, KeyPEM: key, CommonName: "x"}, "come from the supplied certificate"},
		{KeysOptions{CertPEM: []byte("junk"), KeyPEM: key}, "no PEM CERTIFICATE"},
		{KeysOptions{CertPEM: chain, KeyPEM: []byte("junk")}, "no PEM private key"},
		{KeysOptions{CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 1, 2, 3}}), KeyPEM: otherKey}, "certificate 1 of the supplied chain"},
		{KeysOptions{CertPEM: append(append([]byte(nil), chain[:bytes.Index(chain[1:], []byte("-----BEGIN"))+1]...), other...), KeyPEM: key}, "is not signed by"},
	} {
		c.opts.Password = []byte(testPassword)
		if _, err := GenerateKeys(c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want %q, got %v", c.want, err)
		}
	}
	expired, ekey := caSigned(t, time.Now().Add(-time.Hour))
	if _, err := GenerateKeys(KeysOptions{Password: []byte(testPassword), CertPEM: expired, KeyPEM: ekey}); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired: %v", err)
	}
}
