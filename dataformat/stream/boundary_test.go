package stream

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ppml-project/ppml/dataformat/keysource"
)

// The header's field limits hold at exactly the limit (the file round-trips)
// and refuse one byte more, with the limit in the error.
func TestHeaderFieldLimits(t *testing.T) {
	full := testKey
	full.Ref = keysource.KeyRef{
		Kind:    strings.Repeat("k", maxKind),
		ID:      strings.Repeat("i", maxKeyID),
		Version: strings.Repeat("v", maxKeyVer),
	}
	full.Wrapped = strings.Repeat("w", maxWrapped)
	var buf bytes.Buffer
	if _, err := Encrypt(&buf, strings.NewReader("at the limits"), full, nil); err != nil {
		t.Fatalf("Encrypt with every field at its limit: %v", err)
	}
	var out bytes.Buffer
	h, _, err := Decrypt(&out, bytes.NewReader(buf.Bytes()), keyFor(full), nil)
	if err != nil || out.String() != "at the limits" {
		t.Fatalf("Decrypt with every field at its limit: %q, %v", out.String(), err)
	}
	if h.Key != full.Ref || h.WrappedKey != full.Wrapped || h.Size() != MaxHeaderSize {
		t.Fatalf("header %d bytes (want MaxHeaderSize %d), fields changed: %v", h.Size(), MaxHeaderSize, h.Key == full.Ref)
	}

	refErr := func(ref keysource.KeyRef) string {
		return fmt.Sprintf("key reference %s too long (kind ≤ 255, id ≤ 1024, version ≤ 256 bytes)", ref)
	}
	for name, edit := range map[string]func(k *keysource.DataKey){
		"kind":    func(k *keysource.DataKey) { k.Ref.Kind += "k" },
		"id":      func(k *keysource.DataKey) { k.Ref.ID += "i" },
		"version": func(k *keysource.DataKey) { k.Ref.Version += "v" },
	} {
		k := full
		edit(&k)
		_, err := Encrypt(io.Discard, strings.NewReader("x"), k, nil)
		if err == nil || err.Error() != refErr(k.Ref) {
			t.Errorf("%s one byte over the limit: %v", name, err)
		}
		// Only this field over its limit (the others short) is refused too.
		one := testKey
		switch name {
		case "kind":
			one.Ref.Kind = k.Ref.Kind
		case "id":
			one.Ref.ID = k.Ref.ID
		case "version":
			one.Ref.Version = k.Ref.Version
		}
		_, err = Encrypt(io.Discard, strings.NewReader("x"), one, nil)
		if err == nil || err.Error() != refErr(one.Ref) {
			t.Errorf("only %s over the limit: %v", name, err)
		}
	}
	k := testKey
	k.Wrapped += strings.Repeat("w", maxWrapped+1-len(k.Wrapped))
	_, err = Encrypt(io.Discard, strings.NewReader("x"), k, nil)
	if want := "wrapped data key is 16385 bytes; at most 16384 fit in the header"; err == nil || err.Error() != want {
		t.Errorf("wrapped key one byte over: %v, want %q", err, want)
	}
}

// A length field in a read header one over its limit is refused before the
// field is read (the header is not yet authenticated).
func TestReadHeaderFieldOverLimit(t *testing.T) {
	ct := encrypt(t, []byte("x"), nil)
	// Key kind: 1-byte length at fixedLen; 255 is the most a byte holds, so
	// the 2-byte key id length that follows is the first to check.
	kindLen := int(ct[fixedLen])
	idAt := fixedLen + 1 + kindLen
	b := append([]byte{}, ct...)
	over := maxKeyID + 1
	b[idAt], b[idAt+1] = byte(over>>8), byte(over)
	_, err := ReadHeader(bytes.NewReader(b))
	if want := "not a valid ppml-encrypted file: key id length 1025 exceeds 1024"; err == nil || err.Error() != want || !errors.Is(err, ErrFormat) {
		t.Fatalf("key id over the limit: %v, want %q", err, want)
	}
}

// Chunk sizes at both ends of the range are accepted, one past either end
// refused, by the writer and by the header parser.
func TestChunkSizeLimits(t *testing.T) {
	for _, cs := range []int{MinChunkSize, MaxChunkSize} {
		pt := []byte("chunk size limit")
		ct := encrypt(t, pt, &Options{ChunkSize: cs, Workers: 1})
		got, err := decrypt(ct, nil)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("chunk size %d: %q, %v", cs, got, err)
		}
	}
	for _, cs := range []int{MinChunkSize - 1, MaxChunkSize + 1} {
		_, err := Encrypt(io.Discard, strings.NewReader("x"), testKey, &Options{ChunkSize: cs})
		if want := fmt.Sprintf("chunk size %d out of range 64..16777216", cs); err == nil || err.Error() != want {
			t.Errorf("Encrypt chunk size %d: %v, want %q", cs, err, want)
		}
		b := encrypt(t, []byte("x"), nil)
		b[10], b[11], b[12], b[13] = byte(cs>>24), byte(cs>>16), byte(cs>>8), byte(cs)
		_, err = ReadHeader(bytes.NewReader(b))
		if want := fmt.Sprintf("not a valid ppml-encrypted file: chunk size %d out of range 64..16777216", cs); err == nil || err.Error() != want {
			t.Errorf("ReadHeader chunk size %d: %v, want %q", cs, err, want)
		}
	}
}

// Data keys of 16 and 64 bytes are accepted, 15 and 65 refused.
func TestDataKeyLengthLimits(t *testing.T) {
	for _, n := range []int{15, 16, 64, 65} {
		k := testKey
		k.Plaintext = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, n))
		var buf bytes.Buffer
		_, err := Encrypt(&buf, strings.NewReader("key length"), k, nil)
		if n == 16 || n == 64 {
			if err != nil {
				t.Fatalf("%d-byte data key: %v", n, err)
			}
			var out bytes.Buffer
			if _, _, err := Decrypt(&out, &buf, keyFor(k), nil); err != nil || out.String() != "key length" {
				t.Fatalf("%d-byte data key: Decrypt %q, %v", n, out.String(), err)
			}
			continue
		}
		if want := fmt.Sprintf("data key is %d bytes; the ppml format needs 16..64 bytes (32 recommended)", n); err == nil || err.Error() != want {
			t.Errorf("%d-byte data key: %v, want %q", n, err, want)
		}
	}
}

// A file of more batches than the pipeline keeps in flight (workers 1:
// 2*1+2 = 4 batches of 1 MiB) is written and read whole.
func TestManyBatchesOneWorker(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	pt := randBytes(rng, 6<<20+17)
	opt := &Options{Workers: 1}
	ct := encrypt(t, pt, opt)
	if want := EncryptedSize(h(t, ct), DefaultChunkSize, int64(len(pt))); int64(len(ct)) != want {
		t.Fatalf("encrypted %d bytes, want %d", len(ct), want)
	}
	got, err := decrypt(ct, opt)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Decrypt: %d bytes, %v", len(got), err)
	}
}

// failingReaderAt returns the bytes before failAt, then err.
type failingReaderAt struct {
	r      *bytes.Reader
	failAt int64
	err    error
}

func (f *failingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) <= f.failAt {
		return f.r.ReadAt(p, off)
	}
	n, _ := f.r.ReadAt(p[:max(0, f.failAt-off)], off)
	return n, f.err
}

// eofReaderAt returns io.EOF with a full read that ends at the end of the
// data, which io.ReaderAt allows.
type eofReaderAt struct{ b []byte }

func (e eofReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := bytes.NewReader(e.b).ReadAt(p, off)
	if err == nil && off+int64(n) == int64(len(e.b)) {
		err = io.EOF
	}
	return n, err
}

func TestReaderAtBoundaries(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	pt := randBytes(rng, 100_003)
	ct := encrypt(t, pt, &Options{ChunkSize: 1024})
	ra, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), keyFor(testKey))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int64{-1, 98} {
		_, err := ra.Chunk(i)
		if want := fmt.Sprintf("chunk %d out of range 0..97", i); err == nil || err.Error() != want {
			t.Errorf("Chunk(%d): %v, want %q", i, err, want)
		}
	}
	size := ra.Size()
	p := make([]byte, 2)
	if n, err := ra.ReadAt(p[:1], size-1); n != 1 || err != nil || p[0] != pt[len(pt)-1] {
		t.Errorf("ReadAt(1 byte, last byte) = %d, %v", n, err)
	}
	if n, err := ra.ReadAt(p, size-1); n != 1 || err != io.EOF || p[0] != pt[len(pt)-1] {
		t.Errorf("ReadAt(2 bytes, last byte) = %d, %v; want 1, EOF", n, err)
	}
	// At the end, even an empty read reports EOF, as bytes.Reader does.
	for _, n := range []int{0, 1} {
		if k, err := ra.ReadAt(p[:n], size); k != 0 || err != io.EOF {
			t.Errorf("ReadAt(%d bytes, end) = %d, %v; want 0, EOF", n, k, err)
		}
	}
	if k, err := ra.ReadAt(p[:0], size-1); k != 0 || err != nil {
		t.Errorf("ReadAt(0 bytes, last byte) = %d, %v; want 0, nil", k, err)
	}

	// An I/O error reading the final chunk is reported as itself, not as a
	// failed authentication.
	errDisk := errors.New("disk error")
	lastAt := int64(len(ct)) - int64(len(ct)-h(t, ct))%(1024+TagSize)
	_, err = NewReaderAt(&failingReaderAt{bytes.NewReader(ct), lastAt + 1, errDisk}, int64(len(ct)), keyFor(testKey))
	if !errors.Is(err, errDisk) || errors.Is(err, ErrAuth) || err.Error() != "reading chunk 97: disk error" {
		t.Fatalf("I/O error in the final chunk: %v", err)
	}
	// io.EOF with the final chunk's full bytes is the end, not an error.
	ra, err = NewReaderAt(eofReaderAt{ct}, int64(len(ct)), keyFor(testKey))
	if err != nil {
		t.Fatalf("ReaderAt returning io.EOF at the end: %v", err)
	}
	got, err := io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("read through an EOF-at-end ReaderAt: %d bytes, %v", len(got), err)
	}
}

// allocated returns the bytes f allocates, starting from an empty batch pool.
func allocated(f func()) uint64 {
	for batchPool.Get() != nil {
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Memory is bounded by the batches in flight: with one worker at most 4
// batches (each 1 MiB in, 1 MiB + tags out) exist, however long the input,
// and the pipeline finishes (a fifth batch would not fit its pool channel).
func TestPipelineMemoryBound(t *testing.T) {
	pt := make([]byte, 24<<20)
	const batch = 2<<20 + 16*TagSize
	var n int64
	var err error
	done := make(chan uint64)
	go func() {
		done <- allocated(func() { n, err = Encrypt(io.Discard, bytes.NewReader(pt), testKey, &Options{Workers: 1}) })
	}()
	var a uint64
	select {
	case a = <-done:
	case <-time.After(20 * time.Second):
		// More batches than the pool channel holds block the writer goroutine.
		t.Fatal("Encrypt of 24 MiB with one worker did not finish in 20 s: the pipeline is deadlocked")
	}
	if err != nil || n != int64(len(pt)) {
		t.Fatalf("Encrypt: %d, %v", n, err)
	}
	if a > 4*batch+1<<20 {
		t.Fatalf("Encrypt of 24 MiB with one worker allocated %d bytes, more than 4 batches of %d", a, batch)
	}
}

// Batches are recycled across calls: a second small Encrypt reuses the
// first one's batch instead of allocating 2 MiB again. (sync.Pool may drop
// its contents at a GC, so a few attempts are allowed.)
func TestBatchesReused(t *testing.T) {
	pt := []byte("small")
	var a uint64
	for range 5 {
		var buf bytes.Buffer
		a = allocated(func() {
			Encrypt(&buf, bytes.NewReader(pt), testKey, &Options{Workers: 1})
			buf.Reset()
			Encrypt(&buf, bytes.NewReader(pt), testKey, &Options{Workers: 1})
		})
		if a < 3<<20 {
			return
		}
	}
	t.Fatalf("two small Encrypts allocated %d bytes: the second did not reuse the first one's batch", a)
}
