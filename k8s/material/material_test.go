package material

import (
	"bytes"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pavlo-v-chernykh/keystore-go/v4"
	"software.sslmate.com/src/go-pkcs12"
)

const testPassword = "s3cret-Pa55 word!"

var (
	keysOnce sync.Once
	keysVal  *Keys
	keysErr  error
)

func testKeys(t *testing.T) *Keys {
	t.Helper()
	keysOnce.Do(func() {
		keysVal, keysErr = GenerateKeys(KeysOptions{
			Password:        []byte(testPassword),
			IncludePlainKey: true,
			CommonName:      "kms.ppml.svc",
			DNSNames:        []string{"kms.ppml.svc", "*.ppml.example.com"},
			IPs:             []net.IP{net.ParseIP("10.0.0.7"), net.ParseIP("::1")},
		})
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keysVal
}

// tool returns the path of an external tool and fails the test when it is
// missing (scripts/test.sh installs keytool and openssl).
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found on PATH (scripts/test.sh installs it): %v", name, err)
	}
	return p
}

func TestKeysCertificateMatchesKeyAndSANs(t *testing.T) {
	k := testKeys(t)
	if _, err := tls.X509KeyPair(k.ServerCRT, k.ServerKey); err != nil {
		t.Fatalf("server.crt does not match server.key: %v", err)
	}
	if _, err := tls.X509KeyPair(k.ServerPEM, k.ServerPEM); err != nil {
		t.Fatalf("server.pem does not hold a matching key and certificate: %v", err)
	}
	if !bytes.Equal(k.ServerPEM, append(append([]byte(nil), k.ServerKey...), k.ServerCRT...)) {
		t.Fatal("server.pem is not server.key followed by server.crt")
	}
	blk, _ := pem.Decode(k.ServerKey)
	key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if n := key.(*rsa.PrivateKey).N.BitLen(); n != 3072 {
		t.Fatalf("server.key is RSA-%d, want 3072", n)
	}
	cb, _ := pem.Decode(k.ServerCRT)
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "kms.ppml.svc" {
		t.Fatalf("CN = %q", cert.Subject.CommonName)
	}
	if !slices.Equal(cert.DNSNames, []string{"kms.ppml.svc", "*.ppml.example.com"}) {
		t.Fatalf("DNS SANs = %v", cert.DNSNames)
	}
	if len(cert.IPAddresses) != 2 || !cert.IPAddresses[0].Equal(net.ParseIP("10.0.0.7")) || !cert.IPAddresses[1].Equal(net.ParseIP("::1")) {
		t.Fatalf("IP SANs = %v", cert.IPAddresses)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil || !bytes.Equal(cert.RawIssuer, cert.RawSubject) {
		t.Fatalf("not self-signed: %v", err)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore).Hours() / 24; d != DefaultDays {
		t.Fatalf("validity %v days", d)
	}
	// Hostname verification against the cert as its own root.
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	for _, host := range []string{"kms.ppml.svc", "a.ppml.example.com", "10.0.0.7", "::1"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: host, Roots: pool}); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
	rb, _ := pem.Decode(k.ServerCSR)
	csr, err := x509.ParseCertificateRequest(rb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatalf("CSR signature: %v", err)
	}
	if csr.Subject.CommonName != "kms.ppml.svc" || len(csr.DNSNames) != 2 || len(csr.IPAddresses) != 2 {
		t.Fatalf("CSR subject/SANs: %v %v %v", csr.Subject, csr.DNSNames, csr.IPAddresses)
	}
	if !csr.PublicKey.(*rsa.PublicKey).Equal(cert.PublicKey) {
		t.Fatal("CSR key differs from certificate key")
	}
}

// The unencrypted server.key and server.pem are left out unless asked for
// (issue 13 item 9: no BigDL image reads them).
func TestKeysDefaultSANAndNoPlainKeyByDefault(t *testing.T) {
	k, err := GenerateKeys(KeysOptions{Password: []byte(testPassword), Days: 30})
	if err != nil {
		t.Fatal(err)
	}
	if k.Certificate.Subject.CommonName != DefaultCN || !slices.Equal(k.Certificate.DNSNames, []string{DefaultCN}) {
		t.Fatalf("default CN/SAN: %v %v", k.Certificate.Subject, k.Certificate.DNSNames)
	}
	files := k.Files()
	if _, ok := files[ServerKeyFile]; ok {
		t.Fatal("server.key present without IncludePlainKey")
	}
	if _, ok := files[ServerPEMFile]; ok {
		t.Fatal("server.pem present without IncludePlainKey")
	}
	if len(files) != 4 {
		t.Fatalf("files: %d", len(files))
	}
	if _, err := GenerateKeys(KeysOptions{Password: []byte(testPassword), DNSNames: []string{"bad name"}}); err == nil {
		t.Fatal("bad DNS name accepted")
	}
}

func TestKeystoresOpenInGo(t *testing.T) {
	k := testKeys(t)
	priv, cert, err := pkcs12.Decode(k.PKCS12, testPassword)
	if err != nil {
		t.Fatalf("pkcs12 decode: %v", err)
	}
	if !cert.Equal(k.Certificate) {
		t.Fatal("pkcs12 certificate differs")
	}
	if !priv.(*rsa.PrivateKey).PublicKey.Equal(cert.PublicKey) {
		t.Fatal("pkcs12 key does not match certificate")
	}
	if _, _, err := pkcs12.Decode(k.PKCS12, "wrong-password"); err == nil {
		t.Fatal("pkcs12 opened with a wrong password")
	}

	ks := keystore.New()
	if err := ks.Load(bytes.NewReader(k.JKS), []byte(testPassword)); err != nil {
		t.Fatalf("jks load: %v", err)
	}
	e, err := ks.GetPrivateKeyEntry(KeystoreAlias, []byte(testPassword))
	if err != nil {
		t.Fatalf("jks key entry: %v", err)
	}
	jk, err := x509.ParsePKCS8PrivateKey(e.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if !jk.(*rsa.PrivateKey).PublicKey.Equal(cert.PublicKey) {
		t.Fatal("jks key does not match certificate")
	}
	if len(e.CertificateChain) != 1 || !bytes.Equal(e.CertificateChain[0].Content, k.Certificate.Raw) {
		t.Fatal("jks certificate chain")
	}
	if err := keystore.New().Load(bytes.NewReader(k.JKS), []byte("wrong-password")); err == nil {
		t.Fatal("jks opened with a wrong password")
	}
}

func TestKeystoresOpenWithKeytool(t *testing.T) {
	keytool := tool(t, "keytool")
	k := testKeys(t)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	must(t, os.WriteFile(pwFile, []byte(testPassword), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, JKSFile), k.JKS, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, PKCS12File), k.PKCS12, 0o600))

	for _, c := range []struct{ file, typ string }{{JKSFile, "JKS"}, {PKCS12File, "PKCS12"}} {
		out, err := exec.Command(keytool, "-list", "-v", "-keystore", filepath.Join(dir, c.file),
			"-storetype", c.typ, "-storepass:file", pwFile).CombinedOutput()
		if err != nil {
			t.Fatalf("keytool -list %s: %v\n%s", c.file, err, out)
		}
		s := string(out)
		if !strings.Contains(s, "PrivateKeyEntry") || !strings.Contains(s, "CN=kms.ppml.svc") {
			t.Fatalf("keytool -list %s: no key entry for CN=kms.ppml.svc:\n%s", c.file, s)
		}
		// The key itself must be recoverable with the same password (Spark
		// uses store password = key password): export the key entry to a
		// new PKCS#12.
		dst := filepath.Join(dir, c.file+".copy.p12")
		out, err = exec.Command(keytool, "-importkeystore", "-noprompt",
			"-srckeystore", filepath.Join(dir, c.file), "-srcstoretype", c.typ,
			"-srcstorepass:file", pwFile, "-srckeypass:file", pwFile, "-srcalias", KeystoreAlias,
			"-destkeystore", dst, "-deststoretype", "PKCS12",
			"-deststorepass:file", pwFile).CombinedOutput()
		if err != nil {
			t.Fatalf("keytool -importkeystore from %s: %v\n%s", c.file, err, out)
		}
		bad := filepath.Join(dir, "bad")
		must(t, os.WriteFile(bad, []byte("wrong-password"), 0o600))
		if out, err := exec.Command(keytool, "-list", "-keystore", filepath.Join(dir, c.file),
			"-storetype", c.typ, "-storepass:file", bad).CombinedOutput(); err == nil {
			t.Fatalf("keytool opened %s with a wrong password:\n%s", c.file, out)
		}
	}
}

func TestPasswordFilesDecryptLikeImages(t *testing.T) {
	openssl := tool(t, "openssl")
	p, err := GeneratePasswordFiles([]byte(testPassword), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.OutputBin) != 256 {
		t.Fatalf("output.bin is %d bytes, want 256", len(p.OutputBin))
	}
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, KeyTxtFile), p.KeyTxt, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, OutputBinFile), p.OutputBin, 0o600))

	// What the images run: openssl rsautl -inkey key.txt -decrypt <output.bin
	cmd := exec.Command(openssl, "rsautl", "-inkey", KeyTxtFile, "-decrypt")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(p.OutputBin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl rsautl -decrypt: %v\n%s", err, stderr.String())
	}
	if string(out) != testPassword+"\n" {
		t.Fatalf("rsautl plaintext is %d bytes, want password + newline", len(out))
	}
	// The OpenSSL 3 replacement.
	out, err = exec.Command(openssl, "pkeyutl", "-decrypt", "-inkey", filepath.Join(dir, KeyTxtFile),
		"-in", filepath.Join(dir, OutputBinFile)).Output()
	if err != nil {
		t.Fatalf("openssl pkeyutl -decrypt: %v", err)
	}
	if string(out) != testPassword+"\n" {
		t.Fatal("pkeyutl plaintext differs")
	}
	// Shell idiom: export secure_password=$(openssl rsautl ...) strips the newline.
	sh := exec.Command("sh", "-c", `p=$(openssl rsautl -inkey key.txt -decrypt <output.bin) && printf %s "$p"`)
	sh.Dir = dir
	out, err = sh.Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != testPassword {
		t.Fatal("shell idiom does not recover the password")
	}
	got, err := RecoverPassword(p.KeyTxt, p.OutputBin)
	if err != nil || string(got) != testPassword {
		t.Fatalf("RecoverPassword: %v", err)
	}
	// key.txt is a plain RSA-2048 key openssl accepts.
	out, err = exec.Command(openssl, "rsa", "-in", filepath.Join(dir, KeyTxtFile), "-check", "-noout").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl rsa -check: %v\n%s", err, out)
	}
}

func TestValidatePassword(t *testing.T) {
	for _, c := range []struct {
		pw   string
		want error
	}{
		{"", ErrEmptyPassword},
		{"abc", ErrBadPassword},
		{strings.Repeat("a", 245), ErrBadPassword},
		{"pässword", ErrBadPassword},
		{"pass\nword", ErrBadPassword},
		{"abcdef", nil},
		{strings.Repeat("a", 244), nil},
	} {
		err := ValidatePassword([]byte(c.pw))
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("ValidatePassword(len %d) = %v, want %v", len(c.pw), err, c.want)
		}
		if err != nil && len(c.pw) > 0 && strings.Contains(err.Error(), c.pw) {
			t.Errorf("error leaks the password: %v", err)
		}
	}
	if _, err := GenerateKeys(KeysOptions{}); !errors.Is(err, ErrEmptyPassword) {
		t.Fatalf("GenerateKeys without password: %v", err)
	}
	if _, err := GeneratePasswordFiles(nil, nil); !errors.Is(err, ErrEmptyPassword) {
		t.Fatalf("GeneratePasswordFiles without password: %v", err)
	}
}

func TestManifestsRoundTripAndNoPasswordLeak(t *testing.T) {
	k := testKeys(t)
	p, err := GeneratePasswordFiles([]byte(testPassword), nil)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	kd, pd := filepath.Join(root, "keys"), filepath.Join(root, "password")
	must(t, WriteKeysDir(kd, k, "", false))
	must(t, WritePasswordDir(pd, p, []byte(testPassword), "jobs", false))

	assertFiles(t, kd, []string{"keys.yaml", "keystore.jks", "keystore.pkcs12", "server.crt", "server.csr", "server.key", "server.pem"})
	assertFiles(t, pd, []string{"key.txt", "output.bin", "password.yaml", "spark-secret.yaml"})

	km, err := os.ReadFile(filepath.Join(kd, KeysManifest))
	must(t, err)
	secs, err := ParseManifest(km)
	must(t, err)
	if len(secs) != 1 || secs[0].Name != SSLKeysSecret || secs[0].Namespace != "" || secs[0].Type != "Opaque" {
		t.Fatalf("keys.yaml: %+v", secs)
	}
	for name, want := range k.Files() {
		if !bytes.Equal(secs[0].Data[name], want) {
			t.Errorf("keys.yaml %s differs from the file", name)
		}
		onDisk, err := os.ReadFile(filepath.Join(kd, name))
		must(t, err)
		if !bytes.Equal(onDisk, want) {
			t.Errorf("%s on disk differs", name)
		}
	}
	if bytes.Contains(km, []byte("creationTimestamp")) {
		t.Errorf("keys.yaml has empty fields:\n%s", km)
	}

	pm, err := os.ReadFile(filepath.Join(pd, PasswordManifest))
	must(t, err)
	secs, err = ParseManifest(pm)
	must(t, err)
	if len(secs) != 1 || secs[0].Name != SSLPasswordSecret || secs[0].Namespace != "jobs" ||
		!bytes.Equal(secs[0].Data[KeyTxtFile], p.KeyTxt) || !bytes.Equal(secs[0].Data[OutputBinFile], p.OutputBin) {
		t.Fatalf("password.yaml: %+v", secs)
	}
	sm, err := os.ReadFile(filepath.Join(pd, SparkSecretManifest))
	must(t, err)
	secs, err = ParseManifest(sm)
	must(t, err)
	if len(secs) != 1 || secs[0].Name != SparkSecret || string(secs[0].Data[SparkSecretKey]) != testPassword {
		t.Fatalf("spark-secret.yaml: %+v", secs)
	}

	// The password (plain or base64) appears only in spark-secret.yaml,
	// where the contract puts it (spark-secret/secret).
	b64 := base64.StdEncoding.EncodeToString([]byte(testPassword))
	for _, d := range []string{kd, pd} {
		ents, err := os.ReadDir(d)
		must(t, err)
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(d, e.Name()))
			must(t, err)
			leak := bytes.Contains(b, []byte(testPassword)) || bytes.Contains(b, []byte(b64))
			if e.Name() == SparkSecretManifest {
				if !bytes.Contains(b, []byte(b64)) {
					t.Errorf("spark-secret.yaml does not hold the password")
				}
				continue
			}
			if leak {
				t.Errorf("password found in %s", e.Name())
			}
		}
	}
}

func assertFiles(t *testing.T, dir string, want []string) {
	t.Helper()
	st, err := os.Stat(dir)
	must(t, err)
	if st.Mode().Perm() != DirMode {
		t.Errorf("%s mode %v", dir, st.Mode().Perm())
	}
	ents, err := os.ReadDir(dir)
	must(t, err)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
		info, err := e.Info()
		must(t, err)
		if info.Mode().Perm() != FileMode {
			t.Errorf("%s mode %v, want 0600", e.Name(), info.Mode().Perm())
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s holds %v, want %v", dir, got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
