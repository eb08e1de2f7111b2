// Package bigdl reads and writes BigDL PPML's "COMMON" encrypted file format
// bit-exactly (see docs in /work/shared/reference/bigdl-data-format.md §2–§4):
//
//	header (400 bytes) ‖ AES-128-CBC/PKCS#7 ciphertext ‖ HMAC-SHA256(ciphertext)
//
// with keys derived from the characters of the data-key string (not the
// decoded key: BigDL's quirk, reproduced because Spark expects it), `.cbc`
// file names and one `<dir>/.meta` JSON file per dataset directory holding
// the encryptedDataKey.
//
// Unlike BigDL, the reader verifies the HMAC, in constant time, before
// releasing any plaintext. It does so with two passes over a seekable input
// (io.ReaderAt): Open reads the whole ciphertext once and checks the tag;
// only then does Read decrypt, in a second pass that recomputes the tag and
// fails at the end if the file changed between the passes. Callers that
// write plaintext to a file should write it atomically (package atomicfile)
// and discard it on any error; the tree tool does. Non-seekable input is
// not supported: it would have to be buffered whole.
package bigdl

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

const (
	// HeaderSize is the fixed header length.
	HeaderSize = 400
	// MaxEncryptedDataKeyLen is the longest encryptedDataKey a header holds.
	MaxEncryptedDataKeyLen = 376
	// TagSize is the length of the trailing HMAC-SHA256 tag.
	TagSize = 32
	// IVSize is the CBC IV length.
	IVSize = 16
	// Ext is the file-name extension Hadoop needs to pick BigDL's CryptoCodec.
	Ext = ".cbc"
	// MetaName is the dataset metadata file name.
	MetaName = ".meta"
	// Filler is the value of the unused header bytes.
	Filler = 0x80
	// Overhead is the size of an encrypted file minus the padded plaintext.
	Overhead = HeaderSize + TagSize
)

// ErrAuth is wrapped by every error caused by a tag mismatch.
var ErrAuth = errors.New("HMAC-SHA256 tag mismatch: the file was modified, truncated, or the data key is wrong")

// ErrFormat is wrapped by errors about a malformed file.
var ErrFormat = errors.New("not a valid BigDL COMMON-format encrypted file")

// DeriveKeys derives the COMMON-format keys from the data-key string exactly
// as BigDL does: the HMAC key is bytes 0..15 of the string's UTF-8 encoding,
// the AES-128 key is bytes 16..31, right-padded with zero bytes to 16 bytes.
// The decoded key is never used (BigDL quirk: with 24-character keys only 8
// characters reach the AES key). Strings shorter than 16 bytes give a
// zero-padded HMAC key too.
func DeriveKeys(dataKey string) (macKey, aesKey []byte) {
	s := []byte(dataKey)
	macKey = make([]byte, 16)
	aesKey = make([]byte, 16)
	copy(macKey, s)
	if len(s) > 16 {
		copy(aesKey, s[16:])
	}
	return macKey, aesKey
}

// Header is the 400-byte file header.
type Header struct {
	EncryptedDataKey string
	IV               [IVSize]byte
}

// Marshal encodes the header.
func (h *Header) Marshal() ([]byte, error) {
	l := len(h.EncryptedDataKey)
	if l > MaxEncryptedDataKeyLen {
		return nil, fmt.Errorf("encryptedDataKey is %d bytes; a BigDL header holds at most %d", l, MaxEncryptedDataKeyLen)
	}
	if !utf8.ValidString(h.EncryptedDataKey) {
		return nil, errors.New("encryptedDataKey is not valid UTF-8")
	}
	b := make([]byte, HeaderSize)
	binary.BigEndian.PutUint32(b[0:4], uint32(l))
	binary.BigEndian.PutUint32(b[4:8], IVSize)
	copy(b[8:], h.EncryptedDataKey)
	copy(b[8+l:], h.IV[:])
	for i := 24 + l; i < HeaderSize; i++ {
		b[i] = Filler
	}
	return b, nil
}

// ParseHeader decodes a 400-byte header, strictly: L in 0..376, IV length 16,
// every filler byte 0x80.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, fmt.Errorf("%w: file is %d bytes, shorter than the %d-byte header", ErrFormat, len(b), HeaderSize)
	}
	l := int32(binary.BigEndian.Uint32(b[0:4]))
	if l < 0 || l > MaxEncryptedDataKeyLen {
		return h, fmt.Errorf("%w: header key length field is %d, must be 0..%d", ErrFormat, l, MaxEncryptedDataKeyLen)
	}
	if ivl := binary.BigEndian.Uint32(b[4:8]); ivl != IVSize {
		return h, fmt.Errorf("%w: header IV length field is %d, must be 16", ErrFormat, ivl)
	}
	for i := 24 + int(l); i < HeaderSize; i++ {
		if b[i] != Filler {
			return h, fmt.Errorf("%w: header byte %d is 0x%02x, expected filler 0x80", ErrFormat, i, b[i])
		}
	}
	key := b[8 : 8+l]
	if !utf8.Valid(key) {
		return h, fmt.Errorf("%w: encryptedDataKey in header is not UTF-8", ErrFormat)
	}
	h.EncryptedDataKey = string(key)
	copy(h.IV[:], b[8+l:24+l])
	return h, nil
}

// LooksLikeHeader reports whether b starts with a well-formed header (used
// to detect the format without relying on the file name).
func LooksLikeHeader(b []byte) bool {
	_, err := ParseHeader(b)
	return err == nil
}

// CiphertextSize returns the size of the encrypted file for a plaintext of n bytes.
func CiphertextSize(n int64) int64 { return Overhead + (n/16+1)*16 }

// Writer encrypts a stream into the COMMON format. Close must be called to
// write the padding and the tag; it does not close the underlying writer.
type Writer struct {
	w       io.Writer
	cbc     cipher.BlockMode
	mac     hashWriter
	pending [16]byte // plaintext not yet encrypted
	npend   int
	buf     []byte
	err     error
	closed  bool
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

// NewWriter writes a header with a fresh random IV and returns a Writer.
func NewWriter(w io.Writer, dataKey, encryptedDataKey string) (*Writer, error) {
	var iv [IVSize]byte
	if _, err := rand.Read(iv[:]); err != nil {
		return nil, err
	}
	return NewWriterWithIV(w, dataKey, encryptedDataKey, iv)
}

// NewWriterWithIV is NewWriter with a caller-chosen IV. Only for test
// vectors: an IV must never be reused with the same key.
func NewWriterWithIV(w io.Writer, dataKey, encryptedDataKey string, iv [IVSize]byte) (*Writer, error) {
	h := Header{EncryptedDataKey: encryptedDataKey, IV: iv}
	hb, err := h.Marshal()
	if err != nil {
		return nil, err
	}
	macKey, aesKey := DeriveKeys(dataKey)
	blk, err := aes.NewCipher(aesKey)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(hb); err != nil {
		return nil, err
	}
	return &Writer{w: w, cbc: cipher.NewCBCEncrypter(blk, iv[:]), mac: hmac.New(sha256.New, macKey)}, nil
}

// Write encrypts p.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errors.New("bigdl: write after Close")
	}
	n := len(p)
	for len(p) > 0 {
		if w.npend > 0 {
			k := copy(w.pending[w.npend:], p)
			w.npend += k
			p = p[k:]
			if w.npend == 16 {
				if err := w.emit(w.pending[:]); err != nil {
					return 0, err
				}
				w.npend = 0
			}
			continue
		}
		m := min(len(p)/16*16, 1<<20)
		if m == 0 {
			w.npend = copy(w.pending[:], p)
			break
		}
		if err := w.emit(p[:m]); err != nil {
			return 0, err
		}
		p = p[m:]
	}
	return n, nil
}

func (w *Writer) emit(pt []byte) error {
	if cap(w.buf) < len(pt) {
		w.buf = make([]byte, len(pt))
	}
	ct := w.buf[:len(pt)]
	w.cbc.CryptBlocks(ct, pt)
	w.mac.Write(ct)
	if _, err := w.w.Write(ct); err != nil {
		w.err = err
		return err
	}
	return nil
}

// Close pads, encrypts the final block(s) and writes the tag.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return nil
	}
	w.closed = true
	last := pad(w.pending[:w.npend])
	if err := w.emit(last); err != nil {
		return err
	}
	if _, err := w.w.Write(w.mac.Sum(nil)); err != nil {
		w.err = err
		return err
	}
	return nil
}

// pad applies PKCS#7 padding to the 0..15 trailing bytes.
func pad(rest []byte) []byte {
	p := 16 - len(rest)
	out := make([]byte, 16)
	copy(out, rest)
	for i := len(rest); i < 16; i++ {
		out[i] = byte(p)
	}
	return out
}

// KeyFunc returns the data-key string for the encryptedDataKey found in a
// file header.
type KeyFunc func(encryptedDataKey string) (dataKey string, err error)

// Reader decrypts a COMMON-format file whose tag has been verified.
type Reader struct {
	Header Header
	src    *io.SectionReader // ciphertext only
	cbc    cipher.BlockMode
	mac    hashWriter
	tag    []byte
	buf    []byte
	cbuf   []byte
	out    []byte // decrypted, not yet returned
	held   []byte // last decrypted block, withheld until EOF (padding)
	done   bool
	err    error
	ctLen  int64
	pos    int64
}

// Open reads the header, obtains the data key with keyFor, and verifies the
// tag over the whole ciphertext (first pass). Only if the tag matches does
// it return a Reader that decrypts (second pass).
func Open(src io.ReaderAt, size int64, keyFor KeyFunc) (*Reader, error) {
	hb := make([]byte, HeaderSize)
	if size < HeaderSize {
		return nil, fmt.Errorf("%w: file is %d bytes, shorter than the %d-byte header", ErrFormat, size, HeaderSize)
	}
	if _, err := src.ReadAt(hb, 0); err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	h, err := ParseHeader(hb)
	if err != nil {
		return nil, err
	}
	ctLen := size - HeaderSize - TagSize
	if ctLen < 16 || ctLen%16 != 0 {
		return nil, fmt.Errorf("%w: %d bytes follow the header; expected ciphertext (a positive multiple of 16 bytes) plus a 32-byte tag: the file is truncated or not BigDL-encrypted", ErrFormat, size-HeaderSize)
	}
	dk, err := keyFor(h.EncryptedDataKey)
	if err != nil {
		return nil, err
	}
	macKey, aesKey := DeriveKeys(dk)
	tag := make([]byte, TagSize)
	if _, err := src.ReadAt(tag, size-TagSize); err != nil {
		return nil, fmt.Errorf("reading tag: %w", err)
	}
	mac := hmac.New(sha256.New, macKey)
	if _, err := io.Copy(mac, io.NewSectionReader(src, HeaderSize, ctLen)); err != nil {
		return nil, fmt.Errorf("reading ciphertext: %w", err)
	}
	if !hmac.Equal(mac.Sum(nil), tag) {
		return nil, ErrAuth
	}
	blk, err := aes.NewCipher(aesKey)
	if err != nil {
		return nil, err
	}
	return &Reader{
		Header: h,
		src:    io.NewSectionReader(src, HeaderSize, ctLen),
		cbc:    cipher.NewCBCDecrypter(blk, h.IV[:]),
		mac:    hmac.New(sha256.New, macKey),
		tag:    tag,
		ctLen:  ctLen,
	}, nil
}

const readBlock = 1 << 20

// Read returns decrypted plaintext. At the end it checks that the ciphertext
// read in this pass has the verified tag and that the padding is valid.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			r.err = io.EOF
			return 0, io.EOF
		}
		r.fill()
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

func (r *Reader) fill() {
	if cap(r.buf) < readBlock+16 {
		r.buf = make([]byte, readBlock+16)
		r.cbuf = make([]byte, readBlock)
	}
	want := r.ctLen - r.pos
	if want > readBlock {
		want = readBlock
	}
	// buf[0:16] holds the previously withheld block, buf[16:] the new plaintext.
	buf := r.buf[:16+want]
	copy(buf, r.held)
	ct := r.cbuf[:want]
	if _, err := io.ReadFull(r.src, ct); err != nil {
		r.err = fmt.Errorf("reading ciphertext (second pass): %w", err)
		return
	}
	r.pos += want
	// Recompute the tag on one core while decrypting on the other.
	done := make(chan struct{})
	go func() { r.mac.Write(ct); close(done) }()
	r.cbc.CryptBlocks(buf[16:], ct)
	<-done
	start := 16 - len(r.held)
	r.held = append(r.held[:0], buf[len(buf)-16:]...)
	r.out = buf[start : len(buf)-16]
	if r.pos < r.ctLen {
		return
	}
	r.done = true
	if !hmac.Equal(r.mac.Sum(nil), r.tag) {
		r.out = nil
		r.err = fmt.Errorf("%w (the file changed between the verification pass and the decryption pass)", ErrAuth)
		return
	}
	last := r.held
	pn := int(last[15])
	if pn < 1 || pn > 16 || !bytes.Equal(last[16-pn:], bytes.Repeat([]byte{byte(pn)}, pn)) {
		r.out = nil
		r.err = fmt.Errorf("%w: invalid PKCS#7 padding after a valid tag (the data key's AES part is wrong)", ErrFormat)
		return
	}
	// r.out aliases r.buf; append the unpadded tail of the last block.
	tail := last[:16-pn]
	r.out = append(r.out[:len(r.out):len(r.out)], tail...)
}

// Decrypt verifies and decrypts a whole file from src to dst. On error,
// anything written to dst must be discarded (it is written only after the
// tag verified, so it is authentic, but it may be incomplete).
func Decrypt(dst io.Writer, src io.ReaderAt, size int64, keyFor KeyFunc) (int64, error) {
	r, err := Open(src, size, keyFor)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, readBlock)
	return io.CopyBuffer(dst, r, buf)
}

// StaticKey returns a KeyFunc that returns dataKey for any header whose
// encryptedDataKey equals want (or for any header if want is "").
func StaticKey(dataKey, want string) KeyFunc {
	return func(edk string) (string, error) {
		if want != "" && edk != want {
			return "", fmt.Errorf("file header names encryptedDataKey %q, but the dataset's key is %q", trunc(edk), trunc(want))
		}
		return dataKey, nil
	}
}

func trunc(s string) string {
	if len(s) > 48 {
		return s[:48] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
