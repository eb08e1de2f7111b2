package tlsutil

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert puts a self-signed certificate valid until notAfter into
// dir/server.crt and dir/server.key, as an older run would have left it.
func writeCert(t *testing.T, dir string, notAfter time.Time) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "old"},
		NotBefore: notAfter.Add(-365 * 24 * time.Hour), NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "server.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	os.WriteFile(filepath.Join(dir, "server.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	c, _ := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	return Fingerprint(c)
}

// handshake serves cert on loopback and connects with ClientConfig(caFile)
// to serverName; it returns the handshake error.
func handshake(t *testing.T, cert tls.Certificate, caFile, serverName string) error {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.(*tls.Conn).Handshake()
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	cfg, err := ClientConfig(caFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ServerName = serverName
	c, err := tls.Dial("tcp", l.Addr().String(), cfg)
	if err == nil {
		c.Close()
	}
	return err
}

func TestEnsureSelfSignedCreatesAndReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	cert, path, created, err := EnsureSelfSigned(dir)
	if err != nil || !created || path != filepath.Join(dir, "server.crt") {
		t.Fatalf("first call: created %v, %v", created, err)
	}
	for p, mode := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "server.key"): 0o600, path: 0o600} {
		if st, err := os.Stat(p); err != nil {
			t.Error(err)
		} else if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), mode)
		}
	}
	leaf := cert.Leaf
	if life := leaf.NotAfter.Sub(time.Now()); life < 364*24*time.Hour || life > 366*24*time.Hour {
		t.Errorf("valid for %v, want a year", life)
	}
	// The certificate file is the CA a client needs, for every loopback name.
	for _, name := range []string{"127.0.0.1", "localhost", "::1"} {
		if err := handshake(t, cert, path, name); err != nil {
			t.Errorf("client with --ca-file %s, server name %s: %v", path, name, err)
		}
	}
	if err := handshake(t, cert, path, "example.com"); err == nil {
		t.Error("certificate accepted for a name it does not carry")
	}
	if err := handshake(t, cert, "", "127.0.0.1"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("client without the CA: %v", err)
	}
	// A second start keeps the certificate (clients pinned it).
	again, _, created, err := EnsureSelfSigned(dir)
	if err != nil || created || Fingerprint(again) != Fingerprint(cert) {
		t.Fatalf("second call: created %v, %v", created, err)
	}
}

// TestEnsureSelfSignedRenews: a certificate that expires within a week (or
// expired) is replaced by a new one valid for a year; one with more than a
// week left is kept.
func TestEnsureSelfSignedRenews(t *testing.T) {
	for _, c := range []struct {
		name  string
		left  time.Duration
		renew bool
	}{
		{"expired", -time.Hour, true},
		{"3 days left", 3 * 24 * time.Hour, true},
		{"6 days 23 hours left", 7*24*time.Hour - time.Hour, true},
		{"8 days left", 8 * 24 * time.Hour, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			old := writeCert(t, dir, time.Now().Add(c.left))
			cert, path, created, err := EnsureSelfSigned(dir)
			if err != nil {
				t.Fatal(err)
			}
			if created != c.renew || (Fingerprint(cert) != old) == !c.renew {
				t.Fatalf("created %v, fingerprint changed %v; want renewal %v", created, Fingerprint(cert) != old, c.renew)
			}
			if !c.renew {
				return
			}
			if time.Until(cert.Leaf.NotAfter) < 364*24*time.Hour {
				t.Fatalf("renewed certificate valid until %v", cert.Leaf.NotAfter)
			}
			// The file on disk is the new certificate, and serves with it.
			onDisk, err := tls.LoadX509KeyPair(path, filepath.Join(dir, "server.key"))
			if err != nil || Fingerprint(onDisk) != Fingerprint(cert) {
				t.Fatalf("renewed files: %v", err)
			}
			if err := handshake(t, cert, path, "127.0.0.1"); err != nil {
				t.Fatal(err)
			}
			if st, err := os.Stat(filepath.Join(dir, "server.key")); err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("renewed key: %v", err)
			}
		})
	}
}

func TestEnsureSelfSignedDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir, time.Now().Add(30*24*time.Hour))
	os.WriteFile(filepath.Join(dir, "server.key"), []byte("not a key"), 0o600)
	_, _, _, err := EnsureSelfSigned(dir)
	if err == nil || !strings.Contains(err.Error(), "delete both files to regenerate") {
		t.Fatalf("damaged key: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "server.key")); string(b) != "not a key" {
		t.Fatal("damaged key file overwritten instead of reported")
	}
}

// The serving certificate is a leaf (not a CA) signed by a separate CA that
// survives renewal: a client trusting ca.crt alone keeps connecting, and
// server.crt (leaf + CA) still works as a --ca-file.
func TestSelfSignedLeafAndCA(t *testing.T) {
	dir := t.TempDir()
	cert, certPath, _, err := EnsureSelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Leaf.IsCA || cert.Leaf.KeyUsage&x509.KeyUsageCertSign != 0 {
		t.Fatalf("the serving certificate is a CA: IsCA %v, usage %v", cert.Leaf.IsCA, cert.Leaf.KeyUsage)
	}
	caPath := filepath.Join(dir, "ca.crt")
	caPEM, _ := os.ReadFile(caPath)
	blk, _ := pem.Decode(caPEM)
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || !ca.IsCA || bytes.Equal(ca.Raw, cert.Leaf.Raw) {
		t.Fatalf("ca.crt: %v %v", ca, err)
	}
	for _, f := range []string{caPath, certPath} {
		if err := handshake(t, cert, f, "localhost"); err != nil {
			t.Fatalf("trusting %s: %v", f, err)
		}
	}
	if st, _ := os.Stat(filepath.Join(dir, "ca.key")); st.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key mode %v", st.Mode())
	}
	// Renewal: a new leaf under the same CA.
	os.Remove(filepath.Join(dir, "server.crt"))
	renewed, _, created, err := EnsureSelfSigned(dir)
	if err != nil || !created || bytes.Equal(renewed.Leaf.Raw, cert.Leaf.Raw) {
		t.Fatalf("renewal: %v %v", created, err)
	}
	if again, _ := os.ReadFile(caPath); !bytes.Equal(again, caPEM) {
		t.Fatal("renewal replaced the CA")
	}
	if err := handshake(t, renewed, caPath, "localhost"); err != nil {
		t.Fatalf("renewed leaf with the old ca.crt: %v", err)
	}
}

// A damaged or half-present CA is reported, not silently replaced by a new
// one that every client pinning ca.crt would then refuse.
func TestEnsureSelfSignedDamagedCA(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(dir string)
	}{
		{"garbage ca.key", func(dir string) { os.WriteFile(filepath.Join(dir, "ca.key"), []byte("not a key"), 0o600) }},
		{"ca.key missing", func(dir string) { os.Remove(filepath.Join(dir, "ca.key")) }},
		{"ca.crt missing", func(dir string) { os.Remove(filepath.Join(dir, "ca.crt")) }},
		{"ca.crt is the leaf", func(dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, "server.crt"))
			k, _ := os.ReadFile(filepath.Join(dir, "server.key"))
			os.WriteFile(filepath.Join(dir, "ca.crt"), b, 0o600)
			os.WriteFile(filepath.Join(dir, "ca.key"), k, 0o600)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, _, _, err := EnsureSelfSigned(dir); err != nil {
				t.Fatal(err)
			}
			c.damage(dir)
			before, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
			// The leaf is due for renewal: the CA must be loaded to sign it.
			os.Remove(filepath.Join(dir, "server.crt"))
			os.Remove(filepath.Join(dir, "server.key"))
			_, _, _, err := EnsureSelfSigned(dir)
			if err == nil || !strings.Contains(err.Error(), "delete ca.crt and ca.key to create a new CA") {
				t.Fatalf("damaged CA: %v", err)
			}
			if after, _ := os.ReadFile(filepath.Join(dir, "ca.crt")); string(after) != string(before) {
				t.Fatal("ca.crt replaced instead of reported")
			}
		})
	}
}
