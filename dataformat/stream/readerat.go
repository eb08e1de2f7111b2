package stream

import (
	"crypto/cipher"
	"fmt"
	"io"
)

// ReaderAt decrypts arbitrary ranges of an encrypted file by decrypting only
// the chunks that cover them. It is safe for concurrent use.
type ReaderAt struct {
	h          *Header
	ra         io.ReaderAt
	aead       cipher.AEAD
	payloadOff int64
	nchunks    int64
	lastLen    int64 // ciphertext length of the final chunk
	size       int64 // plaintext size
}

// NewReaderAt reads and verifies the header of the encrypted file in ra
// (size bytes long), then authenticates the final chunk, so that Size is
// authentic and truncation or extension is detected immediately.
func NewReaderAt(ra io.ReaderAt, size int64, keyFor KeyFunc) (*ReaderAt, error) {
	h, err := readHeaderAt(ra, size)
	if err != nil {
		return nil, err
	}
	dk, err := keyFor(h)
	if err != nil {
		return nil, err
	}
	pk, err := h.open(dk)
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(pk)
	if err != nil {
		return nil, err
	}
	r := &ReaderAt{h: h, ra: ra, aead: aead, payloadOff: int64(h.Size())}
	payload := size - r.payloadOff
	ccs := int64(h.ChunkSize + TagSize)
	if payload < TagSize {
		return nil, fmt.Errorf("%w: %d payload bytes after the header, fewer than one chunk: the file is truncated", ErrAuth, payload)
	}
	r.nchunks = (payload + ccs - 1) / ccs
	r.lastLen = payload - (r.nchunks-1)*ccs
	if r.lastLen < TagSize {
		return nil, fmt.Errorf("%w: final chunk is %d bytes, shorter than a tag: the file is truncated", ErrAuth, r.lastLen)
	}
	if r.lastLen == TagSize && r.nchunks > 1 {
		return nil, fmt.Errorf("%w: empty final chunk after non-empty chunks (not written by ppml)", ErrFormat)
	}
	r.size = payload - r.nchunks*TagSize
	if _, err := r.Chunk(r.nchunks - 1); err != nil {
		return nil, err
	}
	return r, nil
}

// Header returns the verified header.
func (r *ReaderAt) Header() *Header { return r.h }

// Size returns the plaintext size.
func (r *ReaderAt) Size() int64 { return r.size }

// NumChunks returns the number of chunks.
func (r *ReaderAt) NumChunks() int64 { return r.nchunks }

// Chunk decrypts and returns chunk i (0-based).
func (r *ReaderAt) Chunk(i int64) ([]byte, error) {
	return r.chunk(nil, i)
}

func (r *ReaderAt) chunk(dst []byte, i int64) ([]byte, error) {
	if i < 0 || i >= r.nchunks {
		return nil, fmt.Errorf("chunk %d out of range 0..%d", i, r.nchunks-1)
	}
	ccs := int64(r.h.ChunkSize + TagSize)
	n := ccs
	last := i == r.nchunks-1
	if last {
		n = r.lastLen
	}
	buf := make([]byte, n)
	if _, err := r.ra.ReadAt(buf, r.payloadOff+i*ccs); err != nil && !(err == io.EOF && last) {
		return nil, fmt.Errorf("reading chunk %d: %w", i, err)
	}
	var nc [12]byte
	nonce(&nc, uint64(i), last)
	out, err := r.aead.Open(dst, nc[:], buf, nil)
	if err != nil {
		return nil, chunkErr(uint64(i), last)
	}
	return out, nil
}

// ReadAt implements io.ReaderAt over the plaintext.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	cs := int64(r.h.ChunkSize)
	n := 0
	var buf []byte
	for n < len(p) && off < r.size {
		i := off / cs
		var err error
		buf, err = r.chunk(buf[:0], i)
		if err != nil {
			return n, err
		}
		k := copy(p[n:], buf[off-i*cs:])
		n += k
		off += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
