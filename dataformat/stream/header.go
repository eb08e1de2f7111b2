// Package stream implements the ppml encrypted file format, version 1: a
// versioned, authenticated header naming the KMS key and carrying the
// wrapped data key, followed by the payload encrypted in fixed-size chunks
// with AES-256-GCM in the manner of age's STREAM construction (nonce = chunk
// counter ‖ last-chunk flag). Truncation, extension, reordering, splicing
// between files and header edits are all detected; any chunk can be
// decrypted on its own, which gives random access (ReaderAt). Encryption and
// decryption of one file use all cores with bounded memory.
//
// The byte layout, key schedule and security argument are in
// docs/format-ppml.md.
package stream

import (
	"bufio"
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ppml-project/ppml/dataformat/keysource"
)

// Magic starts every file (8 bytes; the high byte and CR LF SUB catch
// transfer corruption, as in PNG).
const Magic = "\x89PPML\r\n\x1a"

const (
	// Version is the format version written.
	Version = 1
	// SuiteAES256GCM is the only cipher suite of version 1: HKDF-SHA256,
	// HMAC-SHA256 header MAC, AES-256-GCM chunks.
	SuiteAES256GCM = 1
	// DefaultChunkSize is the default plaintext chunk size.
	DefaultChunkSize = 64 << 10
	// MinChunkSize and MaxChunkSize bound the chunk size.
	MinChunkSize = 64
	MaxChunkSize = 16 << 20
	// TagSize is the AEAD tag size added to every chunk.
	TagSize = 16
	// SaltSize is the size of the per-file random salt.
	SaltSize = 32
	// MACSize is the size of the header MAC.
	MACSize = 32

	maxKind    = 255
	maxKeyID   = 1024
	maxKeyVer  = 256
	maxWrapped = 16 << 10
	fixedLen   = 8 + 1 + 1 + 4 + SaltSize
	// MaxHeaderSize bounds the encoded header.
	MaxHeaderSize = fixedLen + 1 + maxKind + 2 + maxKeyID + 2 + maxKeyVer + 2 + maxWrapped + MACSize
)

// Errors wrapped by decryption failures.
var (
	ErrFormat = errors.New("not a valid ppml-encrypted file")
	ErrAuth   = errors.New("authentication failed")
)

// Header is the file header.
type Header struct {
	ChunkSize  int
	Salt       [SaltSize]byte
	Key        keysource.KeyRef
	WrappedKey string

	body []byte // encoding up to (not including) the MAC
	mac  []byte
}

// Size returns the encoded header length, MAC included.
func (h *Header) Size() int { return len(h.body) + MACSize }

// newHeader builds the header of a new file; salt is nil for a fresh
// random one (the known-answer tests pass a fixed salt).
func newHeader(chunkSize int, key keysource.DataKey, salt *[SaltSize]byte) (*Header, error) {
	h := &Header{ChunkSize: chunkSize, Key: key.Ref, WrappedKey: key.Wrapped}
	if salt != nil {
		h.Salt = *salt
	} else if _, err := rand.Read(h.Salt[:]); err != nil {
		return nil, err
	}
	if err := h.encodeBody(); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Header) encodeBody() error {
	if h.ChunkSize < MinChunkSize || h.ChunkSize > MaxChunkSize {
		return fmt.Errorf("chunk size %d out of range %d..%d", h.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	if len(h.Key.Kind) > maxKind || len(h.Key.ID) > maxKeyID || len(h.Key.Version) > maxKeyVer {
		return fmt.Errorf("key reference %s too long (kind ≤ %d, id ≤ %d, version ≤ %d bytes)", h.Key, maxKind, maxKeyID, maxKeyVer)
	}
	if len(h.WrappedKey) > maxWrapped {
		return fmt.Errorf("wrapped data key is %d bytes; at most %d fit in the header", len(h.WrappedKey), maxWrapped)
	}
	var b bytes.Buffer
	b.WriteString(Magic)
	b.WriteByte(Version)
	b.WriteByte(SuiteAES256GCM)
	binary.Write(&b, binary.BigEndian, uint32(h.ChunkSize))
	b.Write(h.Salt[:])
	b.WriteByte(byte(len(h.Key.Kind)))
	b.WriteString(h.Key.Kind)
	for _, s := range []string{h.Key.ID, h.Key.Version, h.WrappedKey} {
		binary.Write(&b, binary.BigEndian, uint16(len(s)))
		b.WriteString(s)
	}
	h.body = b.Bytes()
	return nil
}

// ReadHeader reads and parses a header from r, consuming exactly its bytes.
// The header is NOT yet authenticated: only its key reference and wrapped
// key may be used, to obtain the data key; decryption then verifies it.
func ReadHeader(r io.Reader) (*Header, error) {
	var body bytes.Buffer
	rd := io.TeeReader(r, &body)
	fixed := make([]byte, fixedLen)
	if _, err := io.ReadFull(rd, fixed); err != nil {
		return nil, fmt.Errorf("%w: file shorter than the header (%v)", ErrFormat, err)
	}
	if string(fixed[:8]) != Magic {
		return nil, fmt.Errorf("%w: bad magic bytes %q (is this file encrypted with ppml's default format?)", ErrFormat, fixed[:8])
	}
	if fixed[8] != Version {
		return nil, fmt.Errorf("%w: format version %d is not supported (this build reads version %d); use a newer ppml", ErrFormat, fixed[8], Version)
	}
	if fixed[9] != SuiteAES256GCM {
		return nil, fmt.Errorf("%w: unknown cipher suite %d", ErrFormat, fixed[9])
	}
	h := &Header{ChunkSize: int(binary.BigEndian.Uint32(fixed[10:14]))}
	if h.ChunkSize < MinChunkSize || h.ChunkSize > MaxChunkSize {
		return nil, fmt.Errorf("%w: chunk size %d out of range %d..%d", ErrFormat, h.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	copy(h.Salt[:], fixed[14:])
	field := func(lenBytes, max int, what string) (string, error) {
		lb := make([]byte, lenBytes)
		if _, err := io.ReadFull(rd, lb); err != nil {
			return "", fmt.Errorf("%w: header truncated in %s", ErrFormat, what)
		}
		n := int(lb[0])
		if lenBytes == 2 {
			n = int(binary.BigEndian.Uint16(lb))
		}
		if n > max {
			return "", fmt.Errorf("%w: %s length %d exceeds %d", ErrFormat, what, n, max)
		}
		v := make([]byte, n)
		if _, err := io.ReadFull(rd, v); err != nil {
			return "", fmt.Errorf("%w: header truncated in %s", ErrFormat, what)
		}
		return string(v), nil
	}
	var err error
	if h.Key.Kind, err = field(1, maxKind, "key kind"); err != nil {
		return nil, err
	}
	if h.Key.ID, err = field(2, maxKeyID, "key id"); err != nil {
		return nil, err
	}
	if h.Key.Version, err = field(2, maxKeyVer, "key version"); err != nil {
		return nil, err
	}
	if h.WrappedKey, err = field(2, maxWrapped, "wrapped key"); err != nil {
		return nil, err
	}
	h.body = append([]byte(nil), body.Bytes()...)
	h.mac = make([]byte, MACSize)
	if _, err := io.ReadFull(r, h.mac); err != nil {
		return nil, fmt.Errorf("%w: header truncated in MAC", ErrFormat)
	}
	return h, nil
}

// IsEncrypted reports whether b starts with the magic bytes.
func IsEncrypted(b []byte) bool { return bytes.HasPrefix(b, []byte(Magic)) }

func deriveHeaderKey(dataKey string, h *Header) ([]byte, error) {
	dk, err := keysource.DecodeDataKey(dataKey)
	if err != nil {
		return nil, err
	}
	if len(dk) < 16 || len(dk) > 64 {
		return nil, fmt.Errorf("data key is %d bytes; the ppml format needs 16..64 bytes (32 recommended)", len(dk))
	}
	return hkdf.Key(sha256.New, dk, h.Salt[:], "ppml/stream/v1 header", 32)
}

func payloadKey(dataKey string, h *Header) ([]byte, error) {
	dk, _ := keysource.DecodeDataKey(dataKey)
	return hkdf.Key(sha256.New, dk, h.Salt[:], "ppml/stream/v1 payload\x00"+string(h.mac), 32)
}

// seal computes the header MAC and the payload key for writing.
func (h *Header) seal(dataKey string) ([]byte, error) {
	mk, err := deriveHeaderKey(dataKey, h)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, mk)
	m.Write(h.body)
	h.mac = m.Sum(nil)
	return payloadKey(dataKey, h)
}

// open verifies the header MAC and returns the payload key.
func (h *Header) open(dataKey string) ([]byte, error) {
	mk, err := deriveHeaderKey(dataKey, h)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, mk)
	m.Write(h.body)
	if !hmac.Equal(m.Sum(nil), h.mac) {
		return nil, fmt.Errorf("%w: header MAC mismatch: the header was modified or the data key (key %s) is wrong", ErrAuth, h.Key)
	}
	return payloadKey(dataKey, h)
}

// Bytes returns the encoded header, MAC included.
func (h *Header) Bytes() []byte { return append(append([]byte(nil), h.body...), h.mac...) }

func readHeaderAt(ra io.ReaderAt, size int64) (*Header, error) {
	return ReadHeader(bufio.NewReaderSize(io.NewSectionReader(ra, 0, size), 4096))
}
