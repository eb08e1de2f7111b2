package bigdl

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

const (
	vecKey = "q83vEjRWeJCrze8SNFZ4kA=="
	vecEDK = "5d3c8f2e-1b7a-4c9d-8e6f-0a1b2c3d4e5f"
	vecPT  = "name,age,job\nalice,30,Developer\n"
)

var vecIV = [16]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// TestSpecVector checks the writer against the reference §3.6 vector.
func TestSpecVector(t *testing.T) {
	want := unhex("00000024" + "00000010" + hex.EncodeToString([]byte(vecEDK)) + "000102030405060708090a0b0c0d0e0f")
	want = append(want, bytes.Repeat([]byte{0x80}, 340)...)
	want = append(want, unhex("b45ba71b56701c081116bb122658fe3812324593b78fbcd95f5b9d2a12fbb92e43b420dba780551be59eded5afcff844")...)
	want = append(want, unhex("0cb4a899d275f9e413c31e8932884d3f1f7aad31fbc74ca22d577a365053f472")...)
	sum := sha256.Sum256(want)
	if len(want) != 480 || hex.EncodeToString(sum[:]) != "fb4f4e5b30bac1b5306c889fc1480f524e442b46a812715a84efd11b2f592c59" {
		t.Fatalf("vector assembled wrongly")
	}
	var buf bytes.Buffer
	w, err := NewWriterWithIV(&buf, vecKey, vecEDK, vecIV)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, vecPT)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("Writer output differs from spec vector:\n got %x\nwant %x", buf.Bytes(), want)
	}
	buf.Reset()
	if _, err := encryptIV(&buf, strings.NewReader(vecPT), vecKey, vecEDK, vecIV); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("Encrypt output differs from spec vector")
	}
	var out bytes.Buffer
	if _, err := Decrypt(&out, bytes.NewReader(want), int64(len(want)), StaticKey(vecKey, vecEDK)); err != nil || out.String() != vecPT {
		t.Fatalf("Decrypt = %q, %v", out.String(), err)
	}
}

func TestDeriveKeysSpec(t *testing.T) {
	for _, c := range []struct{ key, mac, aes string }{
		{vecKey, "71383376456a5257654a43727a653853", "4e465a346b413d3d0000000000000000"},
		{"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "41414543417751464267634943516f4c", "4441304f4478415245684d5546525958"},
		{"1234567890123456", hex.EncodeToString([]byte("1234567890123456")), strings.Repeat("00", 16)},
	} {
		m, a := DeriveKeys(c.key)
		if hex.EncodeToString(m) != c.mac || hex.EncodeToString(a) != c.aes {
			t.Errorf("DeriveKeys(%s) = %x, %x", c.key, m, a)
		}
	}
}

// independent is a straightforward whole-buffer implementation of the
// layout written from the spec, sharing no code with the package.
func independent(dataKey, edk string, iv [16]byte, pt []byte) []byte {
	p := 16 - len(pt)%16
	return sealPadded(dataKey, edk, iv, append(append([]byte{}, pt...), bytes.Repeat([]byte{byte(p)}, p)...))
}

// sealPadded builds a file from an already padded plaintext (whole blocks),
// so tests can also seal wrong padding under a valid tag.
func sealPadded(dataKey, edk string, iv [16]byte, padded []byte) []byte {
	s := []byte(dataKey)
	macKey := append([]byte{}, s[:16]...)
	aesKey := make([]byte, 16)
	copy(aesKey, s[16:min(len(s), 32)])
	var out bytes.Buffer
	binary.Write(&out, binary.BigEndian, int32(len(edk)))
	binary.Write(&out, binary.BigEndian, int32(16))
	out.WriteString(edk)
	out.Write(iv[:])
	for out.Len() < 400 {
		out.WriteByte(0x80)
	}
	blk, _ := aes.NewCipher(aesKey)
	ct := make([]byte, len(padded))
	cipher.NewCBCEncrypter(blk, iv[:]).CryptBlocks(ct, padded)
	m := hmac.New(sha256.New, macKey)
	m.Write(ct)
	out.Write(ct)
	out.Write(m.Sum(nil))
	return out.Bytes()
}

func TestAgainstIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []struct{ dk, edk string }{
		{vecKey, vecEDK},
		{"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", strings.Repeat("E", 80)},
		{"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", strings.Repeat("x", 376)},
		{"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", ""},
	}
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 4095, 1 << 20, 1<<20 - 1, 1<<20 + 1, 3<<20 + 5} {
		pt := make([]byte, n)
		for i := range pt {
			pt[i] = byte(rng.Uint32())
		}
		k := keys[n%len(keys)]
		var iv [16]byte
		for i := range iv {
			iv[i] = byte(rng.Uint32())
		}
		want := independent(k.dk, k.edk, iv, pt)
		if int64(len(want)) != CiphertextSize(int64(n)) {
			t.Fatalf("CiphertextSize(%d) = %d, want %d", n, CiphertextSize(int64(n)), len(want))
		}
		// Writer with random write sizes.
		var buf bytes.Buffer
		w, err := NewWriterWithIV(&buf, k.dk, k.edk, iv)
		if err != nil {
			t.Fatal(err)
		}
		for rest := pt; len(rest) > 0; {
			m := min(len(rest), 1+rng.IntN(70000))
			if rng.IntN(4) == 0 {
				m = min(len(rest), rng.IntN(20))
			}
			w.Write(rest[:m])
			rest = rest[m:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("n=%d: Writer differs from independent implementation", n)
		}
		buf.Reset()
		if got, err := encryptIV(&buf, bytes.NewReader(pt), k.dk, k.edk, iv); err != nil || got != int64(n) {
			t.Fatal(got, err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("n=%d: Encrypt differs from independent implementation", n)
		}
		var out bytes.Buffer
		if _, err := Decrypt(&out, bytes.NewReader(want), int64(len(want)), StaticKey(k.dk, k.edk)); err != nil || !bytes.Equal(out.Bytes(), pt) {
			t.Fatalf("n=%d: round trip failed: %v", n, err)
		}
	}
}

func TestEncryptRandomIV(t *testing.T) {
	var a, b bytes.Buffer
	Encrypt(&a, strings.NewReader(vecPT), vecKey, vecEDK)
	Encrypt(&b, strings.NewReader(vecPT), vecKey, vecEDK)
	if bytes.Equal(a.Bytes()[:HeaderSize], b.Bytes()[:HeaderSize]) {
		t.Fatal("IV reused")
	}
}

func TestTamper(t *testing.T) {
	pt := bytes.Repeat([]byte("0123456789abcdef-"), 2000)
	good := independent(vecKey, vecEDK, vecIV, pt)
	l := len(vecEDK)
	ivStart, ivEnd := 8+l, 24+l
	for i := 0; i < len(good); i++ {
		if i >= ivStart && i < ivEnd {
			continue // see TestIVNotAuthenticated
		}
		if i > HeaderSize+64 && i < len(good)-64 && i%97 != 0 {
			continue // sample the middle of the body
		}
		bad := append([]byte{}, good...)
		bad[i] ^= 0x01
		var out bytes.Buffer
		_, err := Decrypt(&out, bytes.NewReader(bad), int64(len(bad)), StaticKey(vecKey, vecEDK))
		if err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
		if out.Len() != 0 {
			t.Fatalf("flipped byte %d: %d plaintext bytes released", i, out.Len())
		}
		if i >= HeaderSize && !errors.Is(err, ErrAuth) {
			t.Fatalf("byte %d: %v", i, err)
		}
	}
	// Truncation and extension.
	for _, n := range []int{0, 399, 400, 447, 448, len(good) - 1, len(good) - 16, len(good) - 32} {
		var out bytes.Buffer
		if _, err := Decrypt(&out, bytes.NewReader(good[:n]), int64(n), StaticKey(vecKey, vecEDK)); err == nil || out.Len() != 0 {
			t.Fatalf("truncated to %d accepted", n)
		}
	}
	long := append(append([]byte{}, good...), make([]byte, 16)...)
	if _, err := Decrypt(io.Discard, bytes.NewReader(long), int64(len(long)), StaticKey(vecKey, vecEDK)); err == nil {
		t.Fatal("extended file accepted")
	}
	// Wrong key: same first 16 characters would pass the MAC; a different one fails.
	if _, err := Decrypt(io.Discard, bytes.NewReader(good), int64(len(good)), StaticKey("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "")); !errors.Is(err, ErrAuth) {
		t.Fatal("wrong key accepted:", err)
	}
	// Header naming another key than the dataset's .meta.
	if _, err := Decrypt(io.Discard, bytes.NewReader(good), int64(len(good)), StaticKey(vecKey, "other")); err == nil {
		t.Fatal("mismatching encryptedDataKey accepted")
	}
}

// TestIVNotAuthenticated documents a property of the BigDL format that no
// reader can fix: the IV is outside the HMAC, so changing it changes the
// first plaintext block undetectably (the ppml format has no such gap).
func TestIVNotAuthenticated(t *testing.T) {
	good := independent(vecKey, vecEDK, vecIV, []byte(vecPT))
	bad := append([]byte{}, good...)
	bad[8+len(vecEDK)] ^= 0x01
	var out bytes.Buffer
	if _, err := Decrypt(&out, bytes.NewReader(bad), int64(len(bad)), StaticKey(vecKey, vecEDK)); err != nil {
		t.Fatal(err)
	}
	if out.Bytes()[0] != vecPT[0]^1 || out.String()[1:] != vecPT[1:] {
		t.Fatalf("unexpected %q", out.String())
	}
}

func TestChangedBetweenPasses(t *testing.T) {
	pt := bytes.Repeat([]byte{7}, 3<<20)
	data := independent(vecKey, vecEDK, vecIV, pt)
	ra := &flipAfterFirstPass{data: data}
	r, err := Open(ra, int64(len(data)), StaticKey(vecKey, vecEDK))
	if err != nil {
		t.Fatal(err)
	}
	ra.flip = true
	if _, err := io.Copy(io.Discard, r); !errors.Is(err, ErrAuth) {
		t.Fatalf("change between passes not detected: %v", err)
	}
}

type flipAfterFirstPass struct {
	data []byte
	flip bool
}

func (f *flipAfterFirstPass) ReadAt(p []byte, off int64) (int, error) {
	if f.flip {
		f.data[len(f.data)-100] ^= 1
		f.flip = false
	}
	return bytes.NewReader(f.data).ReadAt(p, off)
}

func TestHeaderErrors(t *testing.T) {
	h := Header{EncryptedDataKey: strings.Repeat("a", 377)}
	if _, err := h.Marshal(); err == nil {
		t.Fatal("377-byte key accepted")
	}
	good, _ := (&Header{EncryptedDataKey: "k"}).Marshal()
	for name, mut := range map[string]func([]byte){
		"negative L": func(b []byte) { b[0] = 0xff },
		"L 377":      func(b []byte) { binary.BigEndian.PutUint32(b, 377) },
		"iv len":     func(b []byte) { b[7] = 12 },
		"filler":     func(b []byte) { b[399] = 0 },
	} {
		b := append([]byte{}, good...)
		mut(b)
		if _, err := ParseHeader(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !LooksLikeHeader(good) || LooksLikeHeader([]byte("name,age\n")) {
		t.Fatal("LooksLikeHeader")
	}
}

func TestMeta(t *testing.T) {
	b := MarshalMeta(vecEDK)
	if string(b) != `{"encryptedDataKey" : "5d3c8f2e-1b7a-4c9d-8e6f-0a1b2c3d4e5f"}`+"\n" {
		t.Fatalf("%s", b)
	}
	if s, err := ParseMeta([]byte(`{"encryptedDataKey":"abc"}`)); err != nil || s != "abc" {
		t.Fatal(s, err)
	}
	for i := range b {
		bad := append([]byte{}, b...)
		bad[i] ^= 0x01
		s, err := ParseMeta(bad)
		if err == nil && s == vecEDK {
			t.Fatalf("flipped .meta byte %d gives the same key", i)
		}
	}
	// Names are matched case-insensitively, as BigDL's Jackson mapper
	// (ACCEPT_CASE_INSENSITIVE_PROPERTIES) reads KmsMetaFormat.
	for _, spelled := range []string{`{"EncryptedDataKey":"abc"}`, `{"ENCRYPTEDDATAKEY" : "abc"}`, `{"encrypteddatakey":"abc"}` + "\n"} {
		if s, err := ParseMeta([]byte(spelled)); err != nil || s != "abc" {
			t.Errorf("%s: %q %v", spelled, s, err)
		}
	}
	if _, err := ParseMeta([]byte(`{"encryptedDataKey":"a","EncryptedDataKey":"b"}`)); err == nil || !strings.Contains(err.Error(), "keep one") {
		t.Errorf("two spellings of encryptedDataKey: %v", err)
	}
	for _, bad := range []string{``, `{}`, `{"encryptedDataKeys":"a"}`, `{"encryptedDataKey":""}`, `{"encryptedDataKey":"a","x":1}`, `{"encryptedDataKey":"a"} x`, `{"encryptedDataKey":1}`} {
		if _, err := ParseMeta([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	dir := t.TempDir()
	if err := WriteMeta(dir, vecEDK); err != nil {
		t.Fatal(err)
	}
	if s, err := ReadMeta(dir); err != nil || s != vecEDK {
		t.Fatal(s, err)
	}
	if n, ok := DecryptedName("part-0.csv.cbc"); !ok || n != "part-0.csv" || EncryptedName(n) != "part-0.csv.cbc" {
		t.Fatal(n, ok)
	}
	if _, ok := DecryptedName(".cbc"); ok {
		t.Fatal(".cbc alone")
	}
}

// TestOpenVerifiesBeforeReading: the first pass (Open) refuses a tampered
// file by itself, before a Reader exists, so no plaintext of a large file
// is released ahead of the check that the second pass repeats at its end.
func TestOpenVerifiesBeforeReading(t *testing.T) {
	pt := bytes.Repeat([]byte("large BigDL file "), (3<<20)/17)
	good := independent(vecKey, vecEDK, vecIV, pt)
	for _, off := range []int{HeaderSize, HeaderSize + 5000, len(good) - TagSize - 1, len(good) - 1} {
		bad := append([]byte{}, good...)
		bad[off] ^= 0x01
		r, err := Open(bytes.NewReader(bad), int64(len(bad)), StaticKey(vecKey, vecEDK))
		if !errors.Is(err, ErrAuth) || r != nil {
			t.Fatalf("byte %d flipped: Open returned a reader (err %v)", off, err)
		}
		var out bytes.Buffer
		if _, err := Decrypt(&out, bytes.NewReader(bad), int64(len(bad)), StaticKey(vecKey, vecEDK)); !errors.Is(err, ErrAuth) || out.Len() != 0 {
			t.Fatalf("byte %d flipped: Decrypt released %d bytes (err %v)", off, out.Len(), err)
		}
	}
	if _, err := Open(bytes.NewReader(good), int64(len(good)), StaticKey(vecKey, vecEDK)); err != nil {
		t.Fatal(err)
	}
}
