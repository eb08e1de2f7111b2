// Package parquetmod reads and writes Parquet files with Parquet modular
// encryption as BigDL PPML writes them (crypto modes aes_gcm_v1 and
// aes_gcm_ctr_v1), using apache/arrow-go's Parquet encryption support.
//
// BigDL configures parquet-mr's PropertiesDrivenCryptoFactory with the
// in-memory mock KMS and two master keys derived from the characters of the
// data-key string (reference §6):
//
//	"footerKey" = UTF-8 bytes of characters 0..15 of the data-key string
//	"key1"      = UTF-8 bytes of characters 16..31 (all columns)
//
// The file keys themselves are random 128-bit data encryption keys (DEKs),
// one for the footer and one per column, stored in each key's metadata as
// parquet-mr "key material" (PKMT1 JSON, internal storage, double
// wrapping): the DEK is wrapped with AES-GCM under a random 128-bit key
// encryption key (KEK), with the KEK's 16-byte random id as associated
// data, and the KEK is wrapped by the mock KMS with AES-GCM under the master
// key, with the master key id's UTF-8 bytes as associated data. A wrapped
// key is base64(nonce[12] ‖ ciphertext ‖ tag[16]). Single-wrapped material
// (DEK wrapped directly by the master key) is read too.
//
// 24-character data-key strings give a "key1" master key of 8 bytes, not an
// AES key; such datasets cannot be encrypted (a clear error says so); use
// 32-byte data keys (44 characters).
//
// Files parquet-mr wrote (Spark, BigDL) have zero padding inside their
// encrypted page headers, which arrow-go misreads; Decrypt re-frames those
// headers first (paddedheaders.go).
//
// With AES_GCM_V1 every module, page data included, is authenticated. With
// AES_GCM_CTR_V1 page data is encrypted with AES-CTR and is NOT
// authenticated (by the Parquet specification); metadata and page headers
// still are. Prefer AES_GCM_V1.
package parquetmod

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Algorithms (BigDL crypto modes aes_gcm_v1 / aes_gcm_ctr_v1).
const (
	AlgGCM    = "AES_GCM_V1"
	AlgGCMCTR = "AES_GCM_CTR_V1"
)

// Master key ids BigDL uses.
const (
	FooterKeyID = "footerKey"
	ColumnKeyID = "key1"
)

// ErrDecrypt is wrapped by decryption failures.
var ErrDecrypt = errors.New("parquet decryption failed")

// MasterKeys derives BigDL's two master keys from the data-key string.
func MasterKeys(dataKey string) (footer, column []byte, err error) {
	s := []byte(dataKey)
	footer = s[:min(16, len(s))]
	if len(s) > 16 {
		column = s[16:min(32, len(s))]
	}
	for _, k := range []struct {
		id string
		b  []byte
	}{{FooterKeyID, footer}, {ColumnKeyID, column}} {
		if n := len(k.b); n != 16 && n != 24 && n != 32 {
			return nil, nil, fmt.Errorf("master key %q derived from the %d-character data key is %d bytes, not an AES key; Parquet modular encryption needs a data key of at least 32 characters (a 32-byte key, 44 base64 characters)", k.id, len(s), n)
		}
	}
	return footer, column, nil
}

// keyMaterial is parquet-mr's PKMT1 key material.
type keyMaterial struct {
	KeyMaterialType    string `json:"keyMaterialType"`
	InternalStorage    bool   `json:"internalStorage"`
	IsFooterKey        bool   `json:"isFooterKey"`
	KMSInstanceID      string `json:"kmsInstanceID,omitempty"`
	KMSInstanceURL     string `json:"kmsInstanceURL,omitempty"`
	MasterKeyID        string `json:"masterKeyID"`
	WrappedDEK         string `json:"wrappedDEK"`
	DoubleWrapping     bool   `json:"doubleWrapping"`
	KeyEncryptionKeyID string `json:"keyEncryptionKeyID,omitempty"`
	WrappedKEK         string `json:"wrappedKEK,omitempty"`
}

func gcmWrap(key, kek, aad []byte) (string, error) {
	blk, err := aes.NewCipher(kek)
	if err != nil {
		return "", err
	}
	g, err := cipher.NewGCMWithRandomNonce(blk)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(g.Seal(nil, nil, key, aad)), nil
}

func gcmUnwrap(wrapped string, kek, aad []byte) ([]byte, error) {
	ct, err := base64.StdEncoding.DecodeString(wrapped)
	if err != nil {
		return nil, errors.New("wrapped key is not base64")
	}
	blk, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCMWithRandomNonce(blk)
	if err != nil {
		return nil, err
	}
	return g.Open(nil, nil, ct, aad)
}

// kekState is one KEK per master key per file, as parquet-mr does.
type kekState struct {
	kek, id []byte
	wrapped string
}

type wrapper struct {
	masters map[string][]byte
	keks    map[string]*kekState
}

func (w *wrapper) keyMetadata(dek []byte, masterID string, footer bool) (string, error) {
	k := w.keks[masterID]
	if k == nil {
		k = &kekState{kek: make([]byte, 16), id: make([]byte, 16)}
		rand.Read(k.kek)
		rand.Read(k.id)
		var err error
		if k.wrapped, err = gcmWrap(k.kek, w.masters[masterID], []byte(masterID)); err != nil {
			return "", err
		}
		w.keks[masterID] = k
	}
	wdek, err := gcmWrap(dek, k.kek, k.id)
	if err != nil {
		return "", err
	}
	m := keyMaterial{
		KeyMaterialType: "PKMT1", InternalStorage: true, IsFooterKey: footer,
		MasterKeyID: masterID, WrappedDEK: wdek, DoubleWrapping: true,
		KeyEncryptionKeyID: base64.StdEncoding.EncodeToString(k.id), WrappedKEK: k.wrapped,
	}
	if footer {
		m.KMSInstanceID, m.KMSInstanceURL = "DEFAULT", "DEFAULT"
	}
	b, err := json.Marshal(m)
	return string(b), err
}

// retriever unwraps PKMT1 key material with the master keys. arrow-go's
// retriever interface has no error result, so the first error is kept and
// reported after arrow-go gives up.
type retriever struct {
	masters map[string][]byte
	mu      sync.Mutex
	err     error
}

func (r *retriever) fail(err error) string {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
	return ""
}

func (r *retriever) GetKey(meta []byte) string {
	var m keyMaterial
	if err := json.Unmarshal(meta, &m); err != nil || m.KeyMaterialType != "PKMT1" {
		return r.fail(fmt.Errorf("key metadata is not parquet-mr PKMT1 key material (%q)", trunc(string(meta))))
	}
	if !m.InternalStorage {
		return r.fail(errors.New("key material is stored externally; only internal key material (BigDL's setting) is supported"))
	}
	master, ok := r.masters[m.MasterKeyID]
	if !ok {
		return r.fail(fmt.Errorf("key material names master key %q; BigDL datasets use %q and %q", m.MasterKeyID, FooterKeyID, ColumnKeyID))
	}
	if !m.DoubleWrapping {
		dek, err := gcmUnwrap(m.WrappedDEK, master, []byte(m.MasterKeyID))
		if err != nil {
			return r.fail(fmt.Errorf("unwrapping a data encryption key with master key %q failed: wrong data key (check .meta and the key source) or corrupted metadata", m.MasterKeyID))
		}
		return string(dek)
	}
	kek, err := gcmUnwrap(m.WrappedKEK, master, []byte(m.MasterKeyID))
	if err != nil {
		return r.fail(fmt.Errorf("unwrapping the key encryption key with master key %q failed: wrong data key (check .meta and the key source) or corrupted metadata", m.MasterKeyID))
	}
	id, err := base64.StdEncoding.DecodeString(m.KeyEncryptionKeyID)
	if err != nil {
		return r.fail(errors.New("keyEncryptionKeyID is not base64"))
	}
	dek, err := gcmUnwrap(m.WrappedDEK, kek, id)
	if err != nil {
		return r.fail(errors.New("unwrapping a data encryption key failed: corrupted key metadata"))
	}
	return string(dek)
}

func trunc(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// protect turns arrow-go panics into errors.
func protect(what string, err *error, extra func() error) {
	if p := recover(); p != nil {
		e := fmt.Errorf("%w: %s: %v", ErrDecrypt, what, p)
		if extra != nil {
			if x := extra(); x != nil {
				e = fmt.Errorf("%w: %s: %w", ErrDecrypt, what, x)
			}
		}
		*err = e
	}
}

func randKey() []byte {
	k := make([]byte, 16)
	rand.Read(k)
	return k
}

// Encrypt reads the plaintext Parquet file src and writes dst encrypted as
// BigDL does (footer encrypted; every column encrypted under master key
// "key1"), row group by row group, so memory is bounded by one row group.
// alg is AlgGCM (default when "") or AlgGCMCTR.
func Encrypt(dst io.Writer, src parquet.ReaderAtSeeker, dataKey, alg string) (err error) {
	fk, ck, err := MasterKeys(dataKey)
	if err != nil {
		return err
	}
	var cipherAlg parquet.Cipher
	switch strings.ToUpper(alg) {
	case "", AlgGCM:
		cipherAlg = parquet.AesGcm
	case AlgGCMCTR:
		cipherAlg = parquet.AesCtr
	default:
		return fmt.Errorf("unknown Parquet encryption algorithm %q: use %s or %s", alg, AlgGCM, AlgGCMCTR)
	}
	defer protect("encrypting", &err, nil)
	rdr, err := file.NewParquetReader(src)
	if err != nil {
		return fmt.Errorf("reading plaintext Parquet input: %w", err)
	}
	defer rdr.Close()
	if rdr.MetaData().IsSetEncryptionAlgorithm() {
		return errors.New("input Parquet file is already encrypted")
	}
	mem := memory.DefaultAllocator
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, mem)
	if err != nil {
		return err
	}
	sc, err := fr.Schema()
	if err != nil {
		return fmt.Errorf("reading the Parquet schema: %w", err)
	}
	codec := sourceCodec(rdr)
	arrProps := pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema())
	psc, err := pqarrow.ToParquet(sc, parquet.NewWriterProperties(), arrProps)
	if err != nil {
		return err
	}
	w := &wrapper{masters: map[string][]byte{FooterKeyID: fk, ColumnKeyID: ck}, keks: map[string]*kekState{}}
	cols := parquet.ColumnPathToEncryptionPropsMap{}
	for i := range psc.NumColumns() {
		path := psc.Column(i).ColumnPath().String()
		dek := randKey()
		md, err := w.keyMetadata(dek, ColumnKeyID, false)
		if err != nil {
			return err
		}
		cols[path] = parquet.NewColumnEncryptionProperties(path, parquet.WithKey(string(dek)), parquet.WithKeyMetadata(md))
	}
	fdek := randKey()
	fmd, err := w.keyMetadata(fdek, FooterKeyID, true)
	if err != nil {
		return err
	}
	encProps := parquet.NewFileEncryptionProperties(string(fdek),
		parquet.WithFooterKeyMetadata(fmd), parquet.WithAlg(cipherAlg), parquet.WithEncryptedColumns(cols))
	return copyRowGroups(dst, fr, rdr.NumRowGroups(), parquet.NewWriterProperties(
		parquet.WithEncryptionProperties(encProps), parquet.WithCompression(codec)), arrProps)
}

func copyRowGroups(dst io.Writer, fr *pqarrow.FileReader, n int, props *parquet.WriterProperties, arrProps pqarrow.ArrowWriterProperties) error {
	s, err := fr.Schema()
	if err != nil {
		return err
	}
	fw, err := pqarrow.NewFileWriter(s, nopCloser{dst}, props, arrProps)
	if err != nil {
		return err
	}
	cols := make([]int, fr.ParquetReader().MetaData().Schema.NumColumns())
	for i := range cols {
		cols[i] = i
	}
	for i := range n {
		tbl, err := fr.ReadRowGroups(context.Background(), cols, []int{i})
		if err != nil {
			fw.Close()
			return fmt.Errorf("row group %d: %w", i, err)
		}
		err = fw.WriteTable(tbl, max(1, tbl.NumRows()))
		tbl.Release()
		if err != nil {
			fw.Close()
			return fmt.Errorf("writing row group %d: %w", i, err)
		}
	}
	return fw.Close()
}

// sourceCodec returns the compression of the input's first column chunk
// (Snappy, Spark's default, for files without row groups), so that
// re-encoding keeps the input's compression.
func sourceCodec(rdr *file.Reader) compress.Compression {
	if rdr.NumRowGroups() > 0 && rdr.MetaData().Schema.NumColumns() > 0 {
		if cc, err := rdr.MetaData().RowGroup(0).ColumnChunk(0); err == nil {
			return cc.Compression()
		}
	}
	return compress.Codecs.Snappy
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// DecryptionProperties returns arrow-go decryption properties that unwrap
// BigDL's key material with master keys derived from dataKey, and a function
// returning the first key-unwrapping error (arrow-go reports such failures
// only as panics or generic errors).
func DecryptionProperties(dataKey string) (*parquet.FileDecryptionProperties, func() error, error) {
	dp, _, keyErr, err := decryptionProperties(dataKey)
	return dp, keyErr, err
}

func decryptionProperties(dataKey string) (*parquet.FileDecryptionProperties, *retriever, func() error, error) {
	fk, ck, err := MasterKeys(dataKey)
	if err != nil {
		return nil, nil, nil, err
	}
	r := &retriever{masters: map[string][]byte{FooterKeyID: fk, ColumnKeyID: ck}}
	return parquet.NewFileDecryptionProperties(parquet.WithKeyRetriever(r)), r, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.err
	}, nil
}

// Decrypt reads a BigDL-encrypted Parquet file and writes it as a plaintext
// Parquet file, row group by row group. Every module is authenticated as it
// is read (AES_GCM_V1; see the package comment for AES_GCM_CTR_V1); on error
// dst holds an incomplete file that must be discarded.
func Decrypt(dst io.Writer, src parquet.ReaderAtSeeker, dataKey string) (err error) {
	dp, keys, keyErr, err := decryptionProperties(dataKey)
	if err != nil {
		return err
	}
	defer protect("reading the encrypted file", &err, keyErr)
	var magic [4]byte
	if _, err := src.ReadAt(magic[:], 0); err != nil || string(magic[:]) != "PARE" {
		return fmt.Errorf("%w: the file does not start with the encrypted-footer magic \"PARE\" (not an encrypted Parquet file, or modified)", ErrDecrypt)
	}
	props := parquet.NewReaderProperties(memory.DefaultAllocator)
	props.FileDecryptProps = dp
	rdr, err := file.NewParquetReader(src, file.WithReadProps(props))
	if err != nil {
		if ke := keyErr(); ke != nil {
			return fmt.Errorf("%w: %w", ErrDecrypt, ke)
		}
		return fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	defer rdr.Close()
	// Files parquet-mr wrote need their page headers re-framed for arrow-go
	// (paddedheaders.go); the fixer reads them through the same keys.
	fixer, err := newHeaderFixer(src, rdr, keys)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	if fixer != nil {
		if rdr, err = file.NewParquetReader(fixer, file.WithReadProps(props)); err != nil {
			return fmt.Errorf("%w: %w", ErrDecrypt, err)
		}
		defer rdr.Close()
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	codec := sourceCodec(rdr)
	err = copyRowGroups(dst, fr, rdr.NumRowGroups(), parquet.NewWriterProperties(parquet.WithCompression(codec)),
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		if ke := keyErr(); ke != nil {
			return fmt.Errorf("%w: %w", ErrDecrypt, ke)
		}
		return fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	return nil
}
