package parquetmod

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/thrift/lib/go/thrift"
)

// parquet-mr (1.12 to 1.15) encrypts every Thrift module together with the
// unused tail of its 100-byte serialization buffer (format/Util.java: write
// encrypts TMemoryBuffer.getArray()), so a decrypted page header is the
// Thrift struct followed by zero bytes. parquet-mr's reader ignores them;
// arrow-go v18.8.0 does not (parquet/file/page_reader.go, readPageHeader,
// skips only what Thrift consumed plus the framing) and then reads the page
// data from the wrong offset. Until arrow-go skips whole framed modules,
// headerFixer presents arrow-go a view of the file in which each such page
// header is encrypted again, under the same key and associated data,
// without the padding; the column chunk keeps its length (zero bytes after
// its last page, which the reader never reaches). Every original header is
// authenticated (AES-GCM) before it is re-encrypted, and the page data is
// passed through untouched for arrow-go to authenticate.

// Module types of the Parquet encryption specification (associated data).
const (
	moduleDataPageHeader       = 4
	moduleDictionaryPageHeader = 5
	gcmNonceSize               = 12
	gcmTagSize                 = 16
)

// chunkPlan is what re-framing one column chunk needs.
type chunkPlan struct {
	start, length int64
	key           []byte // the column's data encryption key
	rowGroup, col int16
	hasDict       bool
}

// headerFixer is a parquet.ReaderAtSeeker over src with re-framed headers.
type headerFixer struct {
	src     parquet.ReaderAtSeeker
	fileAAD []byte
	chunks  []chunkPlan

	mu          sync.Mutex
	cachedIdx   int
	cachedBytes []byte
}

// newHeaderFixer plans the column chunks of an encrypted-footer file that
// rdr (opened on src with the decryption properties) has read the footer
// of, or returns nil for the writers known to write unpadded headers
// (arrow-go, as ppml itself, and Arrow C++): re-framing reads each chunk
// twice. Any other writer gets the fixer; unpadded headers pass through.
func newHeaderFixer(src parquet.ReaderAtSeeker, rdr *file.Reader, retriever parquet.DecryptionKeyRetriever) (*headerFixer, error) {
	md := rdr.MetaData()
	if v := md.WriterVersion(); v != nil && (v.App == "parquet-go" || v.App == "parquet-cpp-arrow" || v.App == "parquet-cpp") {
		return nil, nil
	}
	fcm, err := readFileCryptoMetadata(src)
	if err != nil {
		return nil, err
	}
	algo := fcm.EncryptionAlgorithm()
	if algo.Aad.SupplyAadPrefix {
		return nil, errors.New("the file needs an AAD prefix that is not stored in it; BigDL does not write such files")
	}
	f := &headerFixer{src: src, fileAAD: append(append([]byte{}, algo.Aad.AadPrefix...), algo.Aad.AadFileUnique...), cachedIdx: -1}
	footerKey := []byte(retriever.GetKey(fcm.KeyMetadata()))
	for rg := range md.NumRowGroups() {
		rgm := md.RowGroup(rg)
		for c := range md.NumColumns() {
			cc, err := rgm.ColumnChunk(c)
			if err != nil {
				return nil, fmt.Errorf("row group %d column %d: %w", rg, c, err)
			}
			cm := cc.CryptoMetadata()
			if cm == nil {
				continue // a plaintext column
			}
			key := footerKey
			if ck := cm.GetENCRYPTION_WITH_COLUMN_KEY(); ck != nil {
				key = []byte(retriever.GetKey(ck.GetKeyMetadata()))
			}
			start := cc.DataPageOffset()
			if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 && cc.DictionaryPageOffset() < start {
				start = cc.DictionaryPageOffset()
			}
			f.chunks = append(f.chunks, chunkPlan{start: start, length: cc.TotalCompressedSize(), key: key,
				rowGroup: int16(rg), col: int16(c), hasDict: cc.HasDictionaryPage()})
		}
	}
	return f, nil
}

// readFileCryptoMetadata reads the FileCryptoMetaData at the start of an
// encrypted footer: ... | FileCryptoMetaData | footer module | len | "PARE".
func readFileCryptoMetadata(src parquet.ReaderAtSeeker) (metadata.FileCryptoMetadata, error) {
	size, err := src.Seek(0, io.SeekEnd)
	if err != nil {
		return metadata.FileCryptoMetadata{}, err
	}
	var tail [8]byte
	if _, err := src.ReadAt(tail[:], size-8); err != nil {
		return metadata.FileCryptoMetadata{}, err
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	if string(tail[4:]) != "PARE" || n <= 0 || n > size-12 {
		return metadata.FileCryptoMetadata{}, errors.New("not an encrypted-footer Parquet file")
	}
	buf := make([]byte, n)
	if _, err := src.ReadAt(buf, size-8-n); err != nil {
		return metadata.FileCryptoMetadata{}, err
	}
	return metadata.NewFileCryptoMetaData(buf)
}

func (f *headerFixer) Seek(off int64, whence int) (int64, error) { return f.src.Seek(off, whence) }

func (f *headerFixer) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.src.ReadAt(p, off)
	end := off + int64(n)
	for i, ch := range f.chunks {
		if ch.start >= end || ch.start+ch.length <= off {
			continue
		}
		fixed, ferr := f.chunk(i)
		if ferr != nil {
			return 0, ferr
		}
		lo, hi := max(off, ch.start), min(end, ch.start+ch.length)
		copy(p[lo-off:hi-off], fixed[lo-ch.start:hi-ch.start])
	}
	return n, err
}

// chunk returns column chunk i re-framed (the last one is cached: arrow-go
// reads a chunk whole, or in consecutive pieces).
func (f *headerFixer) chunk(i int) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cachedIdx == i {
		return f.cachedBytes, nil
	}
	ch := f.chunks[i]
	raw := make([]byte, ch.length)
	if _, err := f.src.ReadAt(raw, ch.start); err != nil {
		return nil, fmt.Errorf("reading column chunk %d of row group %d: %w", ch.col, ch.rowGroup, err)
	}
	fixed, err := reframeChunk(raw, ch, f.fileAAD)
	if err != nil {
		return nil, fmt.Errorf("%w: row group %d column %d: %w", ErrDecrypt, ch.rowGroup, ch.col, err)
	}
	f.cachedIdx, f.cachedBytes = i, fixed
	return fixed, nil
}

// reframeChunk re-encrypts each padded page header of one column chunk
// without its padding. The result has raw's length.
func reframeChunk(raw []byte, ch chunkPlan, fileAAD []byte) ([]byte, error) {
	block, err := aes.NewCipher(ch.key)
	if err != nil {
		return nil, fmt.Errorf("column key: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(raw))
	pos, dataPages := 0, int16(0)
	for page := 0; pos < len(raw); page++ {
		header, next, err := frame(raw, pos)
		if err != nil {
			return nil, fmt.Errorf("page %d header: %w", page, err)
		}
		aad := append([]byte{}, fileAAD...)
		if page == 0 && ch.hasDict {
			aad = append(aad, moduleDictionaryPageHeader)
			aad = binary.LittleEndian.AppendUint16(aad, uint16(ch.rowGroup))
			aad = binary.LittleEndian.AppendUint16(aad, uint16(ch.col))
		} else {
			aad = append(aad, moduleDataPageHeader)
			aad = binary.LittleEndian.AppendUint16(aad, uint16(ch.rowGroup))
			aad = binary.LittleEndian.AppendUint16(aad, uint16(ch.col))
			aad = binary.LittleEndian.AppendUint16(aad, uint16(dataPages))
			dataPages++
		}
		body := header[4:]
		if len(body) < gcmNonceSize+gcmTagSize {
			return nil, fmt.Errorf("page %d header: encrypted module too short", page)
		}
		plain, err := gcm.Open(nil, body[:gcmNonceSize], body[gcmNonceSize:], aad)
		if err != nil {
			return nil, fmt.Errorf("page %d header does not authenticate", page)
		}
		n, err := thriftStructLen(plain)
		if err != nil {
			return nil, fmt.Errorf("page %d header: %w", page, err)
		}
		if n == len(plain) {
			out = append(out, header...)
		} else {
			nonce := make([]byte, gcmNonceSize)
			if _, err := rand.Read(nonce); err != nil {
				return nil, err
			}
			sealed := gcm.Seal(nonce, nonce, plain[:n], aad)
			out = binary.LittleEndian.AppendUint32(out, uint32(len(sealed)))
			out = append(out, sealed...)
		}
		data, after, err := frame(raw, next)
		if err != nil {
			return nil, fmt.Errorf("page %d data: %w", page, err)
		}
		out = append(out, data...)
		pos = after
	}
	return append(out, make([]byte, len(raw)-len(out))...), nil
}

// frame returns the length-prefixed module at pos and the position after it.
func frame(b []byte, pos int) ([]byte, int, error) {
	if pos+4 > len(b) {
		return nil, 0, io.ErrUnexpectedEOF
	}
	n := int(binary.LittleEndian.Uint32(b[pos:]))
	end := pos + 4 + n
	if n <= 0 || end > len(b) {
		return nil, 0, fmt.Errorf("module length %d at offset %d runs past the column chunk", n, pos)
	}
	return b[pos:end], end, nil
}

// thriftStructLen is the length of the Thrift compact-protocol struct at the
// start of b.
func thriftStructLen(b []byte) (int, error) {
	buf := &thrift.TMemoryBuffer{Buffer: bytes.NewBuffer(b)}
	proto := thrift.NewTCompactProtocolConf(buf, &thrift.TConfiguration{})
	if err := thrift.SkipDefaultDepth(context.Background(), proto, thrift.STRUCT); err != nil {
		return 0, fmt.Errorf("not a Thrift struct: %w", err)
	}
	return len(b) - buf.Len(), nil
}
