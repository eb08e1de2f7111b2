package stream

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/ppml-project/ppml/dataformat/keysource"
)

var testKey = keysource.DataKey{
	Plaintext: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
	Wrapped:   "wrapped-by-kms-v7",
	Ref:       keysource.KeyRef{Kind: "ppml-kms", ID: "key-1234", Version: "7"},
}

func keyFor(k keysource.DataKey) KeyFunc {
	return func(h *Header) (string, error) {
		if h.WrappedKey != k.Wrapped || h.Key != k.Ref {
			return "", errors.New("unexpected key reference")
		}
		return k.Plaintext, nil
	}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func encrypt(t testing.TB, pt []byte, opt *Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := Encrypt(&buf, bytes.NewReader(pt), testKey, opt)
	if err != nil || n != int64(len(pt)) {
		t.Fatalf("Encrypt: %d, %v", n, err)
	}
	return buf.Bytes()
}

func decrypt(ct []byte, opt *Options) ([]byte, error) {
	var out bytes.Buffer
	_, _, err := Decrypt(&out, bytes.NewReader(ct), keyFor(testKey), opt)
	return out.Bytes(), err
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, cs := range []int{64, 1000, DefaultChunkSize} {
		for _, n := range []int{0, 1, cs - 1, cs, cs + 1, 2 * cs, 3*cs + 7, 1<<20 + 3, 2 << 20} {
			for _, w := range []int{1, 2, 5} {
				pt := randBytes(rng, n)
				var progress int64
				ct := encrypt(t, pt, &Options{ChunkSize: cs, Workers: w, Progress: func(d int64) { progress += d }})
				if progress != int64(n) {
					t.Fatalf("progress %d != %d", progress, n)
				}
				h, _ := ReadHeader(bytes.NewReader(ct))
				if want := EncryptedSize(h.Size(), cs, int64(n)); int64(len(ct)) != want {
					t.Fatalf("cs=%d n=%d: size %d, EncryptedSize %d", cs, n, len(ct), want)
				}
				got, err := decrypt(ct, &Options{Workers: w})
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("cs=%d n=%d w=%d: round trip failed: %v", cs, n, w, err)
				}
				ra, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), keyFor(testKey))
				if err != nil || ra.Size() != int64(n) {
					t.Fatalf("NewReaderAt: %v", err)
				}
			}
		}
	}
}

func TestHeaderFields(t *testing.T) {
	ct := encrypt(t, []byte("hello"), nil)
	h, err := ReadHeader(bytes.NewReader(ct))
	if err != nil {
		t.Fatal(err)
	}
	if h.Key != testKey.Ref || h.WrappedKey != testKey.Wrapped || h.ChunkSize != DefaultChunkSize {
		t.Fatalf("%+v", h)
	}
	ct2 := encrypt(t, []byte("hello"), nil)
	if bytes.Equal(ct, ct2) {
		t.Fatal("two encryptions identical (salt not random)")
	}
}

func TestRandomAccess(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	pt := randBytes(rng, 100_003)
	ct := encrypt(t, pt, &Options{ChunkSize: 1024})
	ra, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), keyFor(testKey))
	if err != nil {
		t.Fatal(err)
	}
	if ra.NumChunks() != 98 {
		t.Fatalf("chunks %d", ra.NumChunks())
	}
	for range 300 {
		off := rng.Int64N(int64(len(pt)) + 10)
		n := rng.IntN(5000)
		p := make([]byte, n)
		k, err := ra.ReadAt(p, off)
		end := min(off+int64(n), int64(len(pt)))
		wantN := int(max(0, end-off))
		if k != wantN || !bytes.Equal(p[:k], pt[min(off, int64(len(pt))):end]) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", n, off, k, err)
		}
		if (k < n) != (err == io.EOF) {
			t.Fatalf("ReadAt(%d,%d): n=%d err=%v", n, off, k, err)
		}
	}
	c, err := ra.Chunk(97)
	if err != nil || !bytes.Equal(c, pt[97*1024:]) {
		t.Fatal("last chunk", err)
	}
	if _, err := ra.Chunk(98); err == nil {
		t.Fatal("chunk out of range accepted")
	}
	// A corrupted middle chunk fails only reads that touch it.
	bad := append([]byte{}, ct...)
	bad[h(t, ct)+5*(1024+TagSize)+3] ^= 1
	ra, err = NewReaderAt(bytes.NewReader(bad), int64(len(bad)), keyFor(testKey))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ra.ReadAt(make([]byte, 10), 5*1024+100); !errors.Is(err, ErrAuth) {
		t.Fatal("corrupted chunk read:", err)
	}
	if _, err := ra.ReadAt(make([]byte, 10), 100); err != nil {
		t.Fatal(err)
	}
}

func h(t *testing.T, ct []byte) int {
	hd, err := ReadHeader(bytes.NewReader(ct))
	if err != nil {
		t.Fatal(err)
	}
	return hd.Size()
}

func mustFail(t *testing.T, what string, ct []byte) {
	t.Helper()
	if _, err := decrypt(ct, nil); err == nil {
		t.Fatalf("%s: Decrypt accepted", what)
	}
	if _, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), keyFor(testKey)); err == nil {
		// The ReaderAt checks the header and the final chunk at open; a
		// middle-chunk change is found when that chunk is read.
		ra, _ := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), keyFor(testKey))
		if _, err := io.Copy(io.Discard, io.NewSectionReader(ra, 0, ra.Size())); err == nil {
			t.Fatalf("%s: ReaderAt accepted", what)
		}
	}
}

func TestTamperEveryByte(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	pt := randBytes(rng, 700)
	ct := encrypt(t, pt, &Options{ChunkSize: 128})
	for i := range ct {
		bad := append([]byte{}, ct...)
		bad[i] ^= 1 << (i % 8)
		if _, err := decrypt(bad, nil); err == nil {
			t.Fatalf("flip at byte %d accepted", i)
		}
	}
	mustFail(t, "flip", func() []byte { b := append([]byte{}, ct...); b[len(b)/2] ^= 0x80; return b }())
}

func TestTruncateExtendReorderSplice(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const cs = 128
	pt := randBytes(rng, 10*cs)
	ct := encrypt(t, pt, &Options{ChunkSize: cs})
	hs := h(t, ct)
	ccs := cs + TagSize
	chunk := func(b []byte, i int) []byte { return b[hs+i*ccs : hs+(i+1)*ccs] }
	for n := 0; n < len(ct); n++ {
		if n > hs+2 && n%7 != 0 && (n-hs)%ccs != 0 {
			continue
		}
		mustFail(t, "truncated", ct[:n])
	}
	mustFail(t, "extended by a byte", append(append([]byte{}, ct...), 0))
	mustFail(t, "extended by a chunk copy", append(append([]byte{}, ct...), chunk(ct, 3)...))
	// Reorder chunks 2 and 3.
	re := append([]byte{}, ct...)
	copy(re[hs+2*ccs:], chunk(ct, 3))
	copy(re[hs+3*ccs:], chunk(ct, 2))
	mustFail(t, "reordered", re)
	// Drop a middle chunk.
	drop := append(append([]byte{}, ct[:hs+4*ccs]...), ct[hs+5*ccs:]...)
	mustFail(t, "dropped chunk", drop)
	// Splice: chunk from another file under the same data key.
	other := encrypt(t, pt, &Options{ChunkSize: cs})
	sp := append([]byte{}, ct...)
	copy(sp[hs+4*ccs:], chunk(other, 4))
	mustFail(t, "spliced chunk", sp)
	// Header of one file, body of another.
	mix := append(append([]byte{}, ct[:hs]...), other[hs:]...)
	mustFail(t, "swapped header", mix)
	// Header edit: change the key version and recompute nothing.
	hd, _ := ReadHeader(bytes.NewReader(ct))
	hd.Key.Version = "8"
	hd.encodeBody()
	edited := append(hd.Bytes(), ct[hs:]...)
	_, err := decrypt(edited, nil)
	if err == nil {
		t.Fatal("edited header accepted")
	}
	// Wrong data key.
	_, _, err = Decrypt(io.Discard, bytes.NewReader(ct), func(*Header) (string, error) {
		return "ZZECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", nil
	}, nil)
	if !errors.Is(err, ErrAuth) {
		t.Fatal("wrong key:", err)
	}
}

func TestBadHeaders(t *testing.T) {
	ct := encrypt(t, []byte("x"), nil)
	for name, mut := range map[string]func([]byte){
		"magic":   func(b []byte) { b[1] = 'Q' },
		"version": func(b []byte) { b[8] = 2 },
		"suite":   func(b []byte) { b[9] = 9 },
		"chunk":   func(b []byte) { b[10] = 0xff },
	} {
		b := append([]byte{}, ct...)
		mut(b)
		if _, err := ReadHeader(bytes.NewReader(b)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ReadHeader(bytes.NewReader([]byte("plain text"))); !errors.Is(err, ErrFormat) {
		t.Fatal(err)
	}
	if !IsEncrypted(ct) || IsEncrypted([]byte("x")) {
		t.Fatal("IsEncrypted")
	}
	if _, err := Encrypt(io.Discard, bytes.NewReader(nil), testKey, &Options{ChunkSize: 10}); err == nil {
		t.Fatal("tiny chunk accepted")
	}
	short := testKey
	short.Plaintext = "AAAA"
	if _, err := Encrypt(io.Discard, bytes.NewReader(nil), short, nil); err == nil {
		t.Fatal("3-byte data key accepted")
	}
}

type errWriter struct{ n int }

func (e *errWriter) Write(p []byte) (int, error) {
	if e.n -= len(p); e.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

type errReader struct{ n int }

func (e *errReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, errors.New("read failed")
	}
	k := min(len(p), e.n)
	e.n -= k
	return k, nil
}

func TestIOErrors(t *testing.T) {
	pt := make([]byte, 3<<20)
	if _, err := Encrypt(&errWriter{n: 1 << 20}, bytes.NewReader(pt), testKey, nil); err == nil {
		t.Fatal("write error lost")
	}
	if _, err := Encrypt(io.Discard, &errReader{n: 2<<20 + 5}, testKey, nil); err == nil {
		t.Fatal("read error lost")
	}
	ct := encrypt(t, pt, nil)
	if _, _, err := Decrypt(&errWriter{n: 1 << 20}, bytes.NewReader(ct), keyFor(testKey), nil); err == nil {
		t.Fatal("write error lost")
	}
}
