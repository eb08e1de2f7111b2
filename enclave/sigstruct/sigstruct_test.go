package sigstruct_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ppml-project/ppml/enclave/sigstruct"
	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/sim"
	"github.com/ppml-project/ppml/quote/verify"
)

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
	keyErr  error
)

// key is one enclave key per test binary (generating one takes a second).
func key(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() { testKey, keyErr = sigstruct.GenerateKey() })
	if keyErr != nil {
		t.Fatal(keyErr)
	}
	return testKey
}

func mr(b byte) (m [32]byte) {
	for i := range m {
		m[i] = b
	}
	return m
}

func TestGenerateKey(t *testing.T) {
	k := key(t)
	if k.E != 3 || k.N.BitLen() != 3072 {
		t.Fatalf("E=%d, %d bits", k.E, k.N.BitLen())
	}
	// A signature verifies with the public key (the key is a real RSA key).
	d := sha256.Sum256([]byte("x"))
	s, err := rsa.SignPKCS1v15(nil, k, 5, d[:]) // crypto.SHA256 == 5
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(&k.PublicKey, 5, d[:], s); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "enclave-key.pem")
	if err := sigstruct.WriteKeyFile(path, k); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
	back, err := sigstruct.LoadKeyFile(path)
	if err != nil || !back.Equal(k) {
		t.Fatalf("reload: %v", err)
	}
	b, _ := os.ReadFile(path)
	if !bytes.HasPrefix(b, []byte("-----BEGIN RSA PRIVATE KEY-----")) {
		t.Fatalf("not PKCS #1 PEM: %.40q", b)
	}
	// Never overwritten.
	err = sigstruct.WriteKeyFile(path, k)
	if err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("overwrite: %v", err)
	}
	if b2, _ := os.ReadFile(path); !bytes.Equal(b, b2) {
		t.Fatal("key file changed")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("left files behind: %v", ents)
	}
}

func TestParseKeyRefusesNonSGXKeys(t *testing.T) {
	k65537, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sigstruct.ParseKey(sigstruct.MarshalKey(k65537)); err == nil || !strings.Contains(err.Error(), "public exponent 65537, SGX requires 3") {
		t.Fatalf("e=65537: %v", err)
	}
	short := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 2047), E: 3}
	if err := sigstruct.CheckKey(short); err == nil || !strings.Contains(err.Error(), "2048-bit modulus, SGX requires 3072") {
		t.Fatalf("short: %v", err)
	}
	if _, err := sigstruct.ParseKey([]byte("not pem")); err == nil || !strings.HasPrefix(err.Error(), "enclave key: no PEM private key block") {
		t.Fatalf("garbage: %v", err)
	}
}

func TestSignParseRoundTrip(t *testing.T) {
	k := key(t)
	f := sigstruct.GramineFields(mr(0x11), 7, 3, false)
	f.Date = time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC)
	b, err := sigstruct.Sign(k, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != sigstruct.Size {
		t.Fatal(len(b))
	}
	// The layout as Gramine's sgx_arch.h has it.
	if !bytes.Equal(b[:16], []byte{6, 0, 0, 0, 0xe1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0}) ||
		binary.LittleEndian.Uint32(b[20:]) != 0x20240131 || binary.LittleEndian.Uint32(b[512:]) != 3 ||
		!bytes.Equal(b[960:992], bytes.Repeat([]byte{0x11}, 32)) ||
		binary.LittleEndian.Uint16(b[1024:]) != 7 || binary.LittleEndian.Uint16(b[1026:]) != 3 {
		t.Fatal("fields not at the SDM offsets")
	}
	s, err := sigstruct.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if s.MREnclave != f.MREnclave || s.ISVProdID != 7 || s.ISVSVN != 3 || s.Debug() || !s.Date.Equal(f.Date) ||
		s.Attributes != f.Attributes || s.AttributeMask != f.AttributeMask || s.MiscMask != f.MiscMask {
		t.Fatalf("fields: %+v", s.Fields)
	}
	// MRSIGNER: SHA-256 of the modulus in little-endian order, computed here
	// independently from the key.
	be := k.N.FillBytes(make([]byte, 384))
	for i, j := 0, len(be)-1; i < j; i, j = i+1, j-1 {
		be[i], be[j] = be[j], be[i]
	}
	if want := sha256.Sum256(be); s.MRSigner != want || sigstruct.MRSigner(&k.PublicKey) != want {
		t.Fatalf("MRSIGNER %x, want %x", s.MRSigner, want)
	}
	if !bytes.Equal(b[128:512], be) {
		t.Fatal("modulus not stored little-endian")
	}
}

func TestParseRefusesBadSigstructs(t *testing.T) {
	k := key(t)
	good, err := sigstruct.Sign(k, sigstruct.GramineFields(mr(0x22), 1, 1, false))
	if err != nil {
		t.Fatal(err)
	}
	otherKeySig := func() []byte {
		// A second SGX key signs the same fields; its signature with the
		// first key's modulus does not verify. The signature is reduced
		// modulo the first key's modulus (it is larger half of the time), so
		// that it reaches the verification, not the "not below the modulus"
		// check.
		k2, err := sigstruct.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		b2, err := sigstruct.Sign(k2, sigstruct.GramineFields(mr(0x22), 1, 1, false))
		if err != nil {
			t.Fatal(err)
		}
		n1 := new(big.Int).SetBytes(reversed(good[128:512]))
		sig := new(big.Int).SetBytes(reversed(b2[516:900]))
		copy(b2[516:900], reversed(sig.Mod(sig, n1).FillBytes(make([]byte, 384))))
		copy(b2[128:512], good[128:512])
		return b2
	}
	mut := func(f func(b []byte) []byte) []byte {
		return f(bytes.Clone(good))
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "0 bytes, a SIGSTRUCT has 1808: the file is truncated"},
		{"truncated", good[:1807], "size: 1807 bytes, a SIGSTRUCT has 1808: the file is truncated"},
		{"too long", append(bytes.Clone(good), 0), "size: 1809 bytes"},
		{"header", mut(func(b []byte) []byte { b[4] = 0xe2; return b }), "header: 06000000e2"},
		{"header2", mut(func(b []byte) []byte { b[24] = 2; return b }), "header2:"},
		{"vendor", mut(func(b []byte) []byte { b[16] = 1; return b }), "vendor: 0x1, want 0 or 0x8086"},
		{"date", mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[20:], 0x2024013a); return b }), "date: 0x2024013a is not a yyyymmdd BCD date"},
		{"reserved", mut(func(b []byte) []byte { b[100] = 1; return b }), "reserved1: bytes 44..127 are not zero"},
		{"exponent 65537", mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[512:], 65537); return b }), "exponent: 65537, SGX requires 3"},
		{"short modulus", mut(func(b []byte) []byte { b[511] = 0; return b }), "modulus: 30"},
		{"even modulus", mut(func(b []byte) []byte { b[128] &^= 1; return b }), "modulus: even"},
		{"tampered MRENCLAVE", mut(func(b []byte) []byte { b[960] ^= 1; return b }), "signature: the RSA signature does not verify"},
		{"tampered ISVSVN", mut(func(b []byte) []byte { b[1026]++; return b }), "signature: the RSA signature does not verify"},
		{"debug bit set after signing", mut(func(b []byte) []byte { b[928] |= 2; return b }), "signature: the RSA signature does not verify"},
		{"tampered signature", mut(func(b []byte) []byte { b[600] ^= 1; return b }), "signature: the RSA signature does not verify"},
		{"signed by another key", otherKeySig(), "signature: the RSA signature does not verify"},
		{"q1", mut(func(b []byte) []byte { b[1100] ^= 1; return b }), "q1: does not equal"},
		{"q2", mut(func(b []byte) []byte { b[1500] ^= 1; return b }), "q2: does not equal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := sigstruct.Parse(tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: %v, %v; want error containing %q", s, err, tc.want)
			}
			var se *sigstruct.Error
			if !errors.As(err, &se) {
				t.Fatalf("%T is not a *sigstruct.Error", err)
			}
		})
	}
}

// TestPolicyFromSigstruct: the policy derived from a SIGSTRUCT accepts a
// (simulated) quote of that enclave and refuses one of another enclave,
// of another signer, or of a lower SVN.
func TestPolicyFromSigstruct(t *testing.T) {
	s, err := sim.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	col, _ := s.Collateral(abi.SGX)
	sigBytes, m, err := s.SignEnclave(sigstruct.GramineFields(mr(0x33), 9, 4, false))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := sigstruct.Parse(sigBytes)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parsed.Policy(false)
	if err != nil {
		t.Fatal(err)
	}
	if p.TEE != "sgx" || p.MREnclave[0] != strings.Repeat("33", 32) || p.MRSigner[0] != hex.EncodeToString(m.MRSigner[:]) ||
		*p.ISVProdID != 9 || *p.MinISVSVN != 4 || p.AllowDebug {
		t.Fatalf("policy %+v", p)
	}
	p.AllowSimulated = true // the quotes below come from the simulated TEE
	eval := func(m sim.Measurements) []string {
		q, err := s.Quote(abi.SGX, m)
		if err != nil {
			t.Fatal(err)
		}
		res, err := verify.Verify(q, col, s.VerifyOptions(time.Now))
		if err != nil {
			t.Fatal(err)
		}
		return p.Evaluate(res).Reasons
	}
	if r := eval(m); len(r) != 0 {
		t.Fatalf("quote of the signed enclave refused: %v", r)
	}
	otherEnclave := m
	otherEnclave.MREnclave = mr(0x34)
	otherSigner := m
	otherSigner.MRSigner = mr(0x35)
	older := m
	older.ISVSVN = 3
	debug := m
	debug.Debug = true
	for name, c := range map[string]struct {
		m    sim.Measurements
		want string
	}{
		"other enclave": {otherEnclave, "mr_enclave"},
		"other signer":  {otherSigner, "mr_signer"},
		"lower svn":     {older, "isv_svn 3 below policy minimum 4"},
		"debug":         {debug, "debug enclave"},
	} {
		if r := eval(c.m); len(r) == 0 || !strings.Contains(strings.Join(r, "; "), c.want) {
			t.Errorf("%s: reasons %v, want %q", name, r, c.want)
		}
	}

	// BigDL bodies.
	b, err := parsed.BigDLPolicy("", false)
	if err != nil || b["policyType"] != "SGXMREnclavePolicy" || b["mrEnclave"] != strings.Repeat("33", 32) {
		t.Fatalf("bigdl: %v %v", b, err)
	}
	b, err = parsed.BigDLPolicy(sigstruct.BigDLMRSigner, false)
	if err != nil || b["mrSigner"] != hex.EncodeToString(m.MRSigner[:]) || b["isvProdID"] != "9" {
		t.Fatalf("bigdl: %v %v", b, err)
	}
	if _, err := parsed.BigDLPolicy("SGXReportDataPolicy", false); err == nil {
		t.Fatal("report data policy from a SIGSTRUCT")
	}

	// A debug enclave: refused unless allowed.
	dsig, _, err := s.SignEnclave(sigstruct.GramineFields(mr(0x36), 9, 4, true))
	if err != nil {
		t.Fatal(err)
	}
	dp, err := sigstruct.Parse(dsig)
	if err != nil || !dp.Debug() {
		t.Fatalf("debug sigstruct: %v", err)
	}
	if _, err := dp.Policy(false); !errors.Is(err, sigstruct.ErrDebug) || !strings.Contains(err.Error(), "--allow-debug") {
		t.Fatalf("debug policy: %v", err)
	}
	if _, err := dp.BigDLPolicy("", false); !errors.Is(err, sigstruct.ErrDebug) {
		t.Fatalf("debug bigdl policy: %v", err)
	}
	if pol, err := dp.Policy(true); err != nil || !pol.AllowDebug {
		t.Fatalf("allowed debug policy: %+v %v", pol, err)
	}
}

// reversed returns a copy of the little-endian b in big-endian order.
func reversed(b []byte) []byte {
	r := make([]byte, len(b))
	for i, c := range b {
		r[len(b)-1-i] = c
	}
	return r
}
