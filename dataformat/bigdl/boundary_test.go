package bigdl

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

// An encryptedDataKey of exactly 376 bytes fills the header and round-trips;
// one byte more is refused with the limit in the error.
func TestHeaderKeyLengthLimit(t *testing.T) {
	edk := strings.Repeat("e", MaxEncryptedDataKeyLen)
	var buf bytes.Buffer
	if _, err := Encrypt(&buf, strings.NewReader(vecPT), vecKey, edk); err != nil {
		t.Fatalf("376-byte encryptedDataKey: %v", err)
	}
	var out bytes.Buffer
	if _, err := Decrypt(&out, bytes.NewReader(buf.Bytes()), int64(buf.Len()), StaticKey(vecKey, edk)); err != nil || out.String() != vecPT {
		t.Fatalf("376-byte encryptedDataKey: Decrypt %q, %v", out.String(), err)
	}
	_, err := (&Header{EncryptedDataKey: edk + "e"}).Marshal()
	if want := "encryptedDataKey is 377 bytes; a BigDL header holds at most 376"; err == nil || err.Error() != want {
		t.Fatalf("377-byte encryptedDataKey: %v, want %q", err, want)
	}
}

// The size checks before the MAC: a file of exactly the header, of the
// header and a tag with no ciphertext, and one byte short of or over a whole
// block, each with its own ErrFormat message (not a tag mismatch).
func TestOpenSizeBoundaries(t *testing.T) {
	good := independent(vecKey, vecEDK, vecIV, []byte(vecPT)) // 400 + 48 + 32 bytes
	msg := func(follow int) string {
		return fmt.Sprintf("not a valid BigDL COMMON-format encrypted file: %d bytes follow the header; expected ciphertext (a positive multiple of 16 bytes) plus a 32-byte tag: the file is truncated or not BigDL-encrypted", follow)
	}
	for _, c := range []struct {
		b    []byte
		want string
	}{
		{good[:HeaderSize-1], "not a valid BigDL COMMON-format encrypted file: file is 399 bytes, shorter than the 400-byte header"},
		{good[:HeaderSize], msg(0)},
		{append(good[:HeaderSize:HeaderSize], good[len(good)-TagSize:]...), msg(TagSize)},
		{good[:len(good)-1], msg(len(good) - HeaderSize - 1)},
		{append(append([]byte{}, good...), 0), msg(len(good) - HeaderSize + 1)},
	} {
		_, err := Open(bytes.NewReader(c.b), int64(len(c.b)), StaticKey(vecKey, vecEDK))
		if err == nil || err.Error() != c.want || !errors.Is(err, ErrFormat) {
			t.Errorf("%d-byte file: %v, want %q", len(c.b), err, c.want)
		}
	}
}

// Padding is checked after a valid tag (a wrong AES half of the key gives
// valid tags and random padding): every malformed final block is refused
// with ErrFormat, without a panic and without releasing it; pad lengths 1
// and 16 are accepted.
func TestPaddingAfterValidTag(t *testing.T) {
	block := []byte("0123456789abcdef")
	for _, c := range []struct {
		name string
		last []byte
		want string // plaintext, or "" for refused
	}{
		{"pad 1", []byte("0123456789abcde\x01"), "0123456789abcdef0123456789abcde"},
		{"pad 16", bytes.Repeat([]byte{16}, 16), "0123456789abcdef"},
		{"pad 0", []byte("0123456789abcde\x00"), ""},
		{"pad 17", []byte("0123456789abcde\x11"), ""},
		{"pad 255", []byte("0123456789abcde\xff"), ""},
		{"pad 2, other byte before", []byte("0123456789abcd\x03\x02"), ""},
		{"pad 16, one byte off", append([]byte{15}, bytes.Repeat([]byte{16}, 15)...), ""},
	} {
		f := sealPadded(vecKey, vecEDK, vecIV, append(append([]byte{}, block...), c.last...))
		var out bytes.Buffer
		_, err := Decrypt(&out, bytes.NewReader(f), int64(len(f)), StaticKey(vecKey, vecEDK))
		if c.want != "" {
			if err != nil || out.String() != c.want {
				t.Errorf("%s: %q, %v", c.name, out.String(), err)
			}
			continue
		}
		want := "not a valid BigDL COMMON-format encrypted file: invalid PKCS#7 padding after a valid tag (the data key's AES part is wrong)"
		if err == nil || err.Error() != want || strings.Contains(out.String(), "abcd") {
			t.Errorf("%s: released %q, %v; want %q", c.name, out.String(), err, want)
		}
	}
}

// failWriter accepts ok bytes, then fails every write.
type failWriter struct {
	ok  int
	err error
}

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.ok {
		return 0, f.err
	}
	f.ok -= len(p)
	return len(p), nil
}

// A write error on the ciphertext or on the tag is returned by the Writer
// and by Encrypt (a file without its tag is not a file).
func TestWriteErrors(t *testing.T) {
	errDisk := errors.New("disk full")
	for _, ok := range []int{HeaderSize, HeaderSize + 32} { // fail at the ciphertext, at the tag
		fw := &failWriter{ok: ok, err: errDisk}
		w, err := NewWriterWithIV(fw, vecKey, vecEDK, vecIV)
		if err != nil {
			t.Fatal(err)
		}
		_, werr := w.Write(make([]byte, 31)) // 16 bytes now, 15 held for Close
		cerr := w.Close()
		if ok == HeaderSize && (!errors.Is(werr, errDisk) || !errors.Is(cerr, errDisk)) {
			t.Errorf("ciphertext write failed: Write %v, Close %v", werr, cerr)
		}
		if ok > HeaderSize && (werr != nil || !errors.Is(cerr, errDisk)) {
			t.Errorf("tag write failed: Write %v, Close %v", werr, cerr)
		}
		if _, err := w.Write([]byte("x")); !errors.Is(err, errDisk) {
			t.Errorf("Write after a failed write: %v", err)
		}

		// Encrypt of 31 bytes writes the header, 32 bytes of ciphertext, the tag.
		fw = &failWriter{ok: ok, err: errDisk}
		if _, err := Encrypt(fw, bytes.NewReader(make([]byte, 31)), vecKey, vecEDK); !errors.Is(err, errDisk) {
			t.Errorf("Encrypt with the write failing after %d bytes: %v", ok, err)
		}
	}
}

type countWriter struct{ writes, bytes int }

func (c *countWriter) Write(p []byte) (int, error) { c.writes++; c.bytes += len(p); return len(p), nil }

// A large Write reaches the underlying writer in one piece, not block by
// block, and a Writer in steady state allocates nothing.
func TestWriterBuffers(t *testing.T) {
	cw := &countWriter{}
	w, err := NewWriterWithIV(cw, vecKey, vecEDK, vecIV)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 1<<20)
	cw.writes = 0
	if _, err := w.Write(p); err != nil || cw.writes != 1 || cw.bytes != HeaderSize+1<<20 {
		t.Fatalf("1 MiB Write: %d underlying writes, %d bytes, %v", cw.writes, cw.bytes, err)
	}
	if a := testing.AllocsPerRun(5, func() { w.Write(p) }); a != 0 {
		t.Fatalf("Write allocates %v times per call", a)
	}
}

// Decrypting reuses its 1 MiB buffers: what it allocates does not grow with
// the file (8 MiB here).
func TestDecryptMemory(t *testing.T) {
	pt := make([]byte, 8<<20)
	f := independent(vecKey, vecEDK, vecIV, pt)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n, err := Decrypt(io.Discard, bytes.NewReader(f), int64(len(f)), StaticKey(vecKey, vecEDK))
	runtime.ReadMemStats(&after)
	if err != nil || n != int64(len(pt)) {
		t.Fatalf("Decrypt: %d, %v", n, err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	if alloc > 6<<20 {
		t.Fatalf("Decrypt of 8 MiB allocated %d bytes; want the same few MiB for any size", alloc)
	}
}

// The key-mismatch error shows an encryptedDataKey of 48 bytes whole and
// cuts a longer one.
func TestKeyMismatchMessage(t *testing.T) {
	e48, e49 := strings.Repeat("a", 48), strings.Repeat("b", 49)
	_, err := StaticKey(vecKey, e49)(e48)
	want := fmt.Sprintf("file header names encryptedDataKey %q, but the dataset's key is %q", e48, strings.Repeat("b", 48)+"...")
	if err == nil || err.Error() != want {
		t.Fatalf("%v, want %q", err, want)
	}
}

// A .meta with anything after its object, even a closing bracket that the
// JSON decoder does not count as another value, is refused.
func TestMetaTrailingContent(t *testing.T) {
	for _, tail := range []string{"}", "]", " {}", "x"} {
		_, err := ParseMeta([]byte(`{"encryptedDataKey":"abc"}` + tail))
		if want := "invalid .meta: unexpected content after the JSON object"; err == nil || err.Error() != want {
			t.Errorf("trailing %q: %v, want %q", tail, err, want)
		}
	}
	if s, err := ParseMeta([]byte("{\"encryptedDataKey\":\"abc\"}\r\n\t ")); err != nil || s != "abc" {
		t.Fatalf("trailing whitespace: %q, %v", s, err)
	}
}
