package parquetmod

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

const dataKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" // 44 characters

func sampleTable(t *testing.T) arrow.Table {
	t.Helper()
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "score", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for i := range 5000 {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		if i%7 == 0 {
			b.Field(1).(*array.StringBuilder).AppendNull()
		} else {
			b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("person-%d", i))
		}
		b.Field(2).(*array.Float64Builder).Append(float64(i) / 3)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	return array.NewTableFromRecords(sc, []arrow.RecordBatch{rec})
}

// plainParquet writes the sample table as a plaintext file with 3 row groups.
func plainParquet(t *testing.T) ([]byte, arrow.Table) {
	tbl := sampleTable(t)
	var buf bytes.Buffer
	if err := pqarrow.WriteTable(tbl, &buf, 2000, nil, pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), tbl
}

func readTable(t *testing.T, b []byte, props *parquet.FileDecryptionProperties) (arrow.Table, error) {
	rp := parquet.NewReaderProperties(memory.DefaultAllocator)
	rp.FileDecryptProps = props
	rdr, err := file.NewParquetReader(bytes.NewReader(b), file.WithReadProps(rp))
	if err != nil {
		return nil, err
	}
	defer rdr.Close()
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	return fr.ReadTable(context.Background())
}

func sameRows(t *testing.T, a, b arrow.Table) {
	t.Helper()
	if a.NumRows() != b.NumRows() || a.NumCols() != b.NumCols() {
		t.Fatalf("shape %dx%d vs %dx%d", a.NumRows(), a.NumCols(), b.NumRows(), b.NumCols())
	}
	for i := range int(a.NumCols()) {
		x, _ := array.Concatenate(a.Column(i).Data().Chunks(), memory.DefaultAllocator)
		y, _ := array.Concatenate(b.Column(i).Data().Chunks(), memory.DefaultAllocator)
		if !array.Equal(x, y) {
			t.Fatalf("column %s differs", a.Schema().Field(i).Name)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	plain, tbl := plainParquet(t)
	for _, alg := range []string{AlgGCM, AlgGCMCTR} {
		var enc bytes.Buffer
		if err := Encrypt(&enc, bytes.NewReader(plain), dataKey, alg); err != nil {
			t.Fatal(err)
		}
		e := enc.Bytes()
		if string(e[:4]) != "PARE" || string(e[len(e)-4:]) != "PARE" {
			t.Fatalf("%s: not an encrypted-footer file", alg)
		}
		if bytes.Contains(e, []byte("person-42")) {
			t.Fatalf("%s: plaintext visible", alg)
		}
		// Without keys the file cannot be read.
		if _, err := safeRead(t, e, nil); err == nil {
			t.Fatal("read without keys")
		}
		var dec bytes.Buffer
		if err := Decrypt(&dec, bytes.NewReader(e), dataKey); err != nil {
			t.Fatal(err)
		}
		got, err := readTable(t, dec.Bytes(), nil)
		if err != nil {
			t.Fatal(err)
		}
		sameRows(t, tbl, got)
		// Independent path: arrow-go's reader with a key retriever written
		// here from the reference (PKMT1, double wrapping, InMemoryKMS).
		got2, err := readTable(t, e, parquet.NewFileDecryptionProperties(parquet.WithKeyRetriever(testRetriever{dataKey})))
		if err != nil {
			t.Fatalf("%s: independent reader: %v", alg, err)
		}
		sameRows(t, tbl, got2)
		rdr, _ := file.NewParquetReader(bytes.NewReader(e), file.WithReadProps(func() *parquet.ReaderProperties {
			rp := parquet.NewReaderProperties(nil)
			rp.FileDecryptProps = parquet.NewFileDecryptionProperties(parquet.WithKeyRetriever(testRetriever{dataKey}))
			return rp
		}()))
		if rdr.NumRowGroups() != 3 {
			t.Fatalf("row groups %d", rdr.NumRowGroups())
		}
		rdr.Close()
	}
}

func safeRead(t *testing.T, b []byte, props *parquet.FileDecryptionProperties) (tbl arrow.Table, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return readTable(t, b, props)
}

// testRetriever is an independent implementation of parquet-mr's PKMT1
// unwrapping with BigDL's master keys (reference §6).
type testRetriever struct{ dk string }

func (r testRetriever) GetKey(meta []byte) string {
	var m map[string]any
	if err := json.Unmarshal(meta, &m); err != nil {
		panic(err)
	}
	master := map[string]string{"footerKey": r.dk[:16], "key1": r.dk[16:32]}[m["masterKeyID"].(string)]
	open := func(wrapped string, key, aad []byte) []byte {
		ct, _ := base64.StdEncoding.DecodeString(wrapped)
		blk, _ := aes.NewCipher(key)
		g, _ := cipher.NewGCM(blk)
		pt, err := g.Open(nil, ct[:12], ct[12:], aad)
		if err != nil {
			panic(err)
		}
		return pt
	}
	if m["keyMaterialType"] != "PKMT1" || m["internalStorage"] != true || m["doubleWrapping"] != true {
		panic("unexpected key material " + string(meta))
	}
	if (m["isFooterKey"] == true) != (m["kmsInstanceID"] == "DEFAULT") {
		panic("kmsInstanceID only for the footer key")
	}
	kek := open(m["wrappedKEK"].(string), []byte(master), []byte(m["masterKeyID"].(string)))
	id, _ := base64.StdEncoding.DecodeString(m["keyEncryptionKeyID"].(string))
	return string(open(m["wrappedDEK"].(string), kek, id))
}

// TestReadsForeignFile decrypts a file written directly with arrow-go and
// key material made here (single wrapping, as parquet-mr writes with
// parquet.encryption.double.wrapping=false), i.e. not by Encrypt.
func TestReadsForeignFile(t *testing.T) {
	_, tbl := plainParquet(t)
	seal := func(key, kek, aad []byte) string {
		blk, _ := aes.NewCipher(kek)
		g, _ := cipher.NewGCM(blk)
		nonce := bytes.Repeat([]byte{9}, 12)
		return base64.StdEncoding.EncodeToString(append(nonce, g.Seal(nil, nonce, key, aad)...))
	}
	material := func(dek []byte, master string, footer bool) string {
		m := map[string]any{"keyMaterialType": "PKMT1", "internalStorage": true, "isFooterKey": footer,
			"masterKeyID": master, "doubleWrapping": false}
		mk := dataKey[:16]
		if master == "key1" {
			mk = dataKey[16:32]
		}
		m["wrappedDEK"] = seal(dek, []byte(mk), []byte(master))
		if footer {
			m["kmsInstanceID"], m["kmsInstanceURL"] = "DEFAULT", "DEFAULT"
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	fdek, cdek := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 16)
	cols := parquet.ColumnPathToEncryptionPropsMap{}
	for _, c := range []string{"id", "name", "score"} {
		cols[c] = parquet.NewColumnEncryptionProperties(c, parquet.WithKey(string(cdek)), parquet.WithKeyMetadata(material(cdek, "key1", false)))
	}
	ep := parquet.NewFileEncryptionProperties(string(fdek), parquet.WithFooterKeyMetadata(material(fdek, "footerKey", true)), parquet.WithEncryptedColumns(cols))
	var buf bytes.Buffer
	if err := pqarrow.WriteTable(tbl, &buf, 5000, parquet.NewWriterProperties(parquet.WithEncryptionProperties(ep)), pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
	var dec bytes.Buffer
	if err := Decrypt(&dec, bytes.NewReader(buf.Bytes()), dataKey); err != nil {
		t.Fatal(err)
	}
	got, err := readTable(t, dec.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sameRows(t, tbl, got)
}

func TestTamperAndWrongKey(t *testing.T) {
	plain, _ := plainParquet(t)
	var enc bytes.Buffer
	if err := Encrypt(&enc, bytes.NewReader(plain), dataKey, AlgGCM); err != nil {
		t.Fatal(err)
	}
	good := enc.Bytes()
	step := max(1, len(good)/400)
	for i := 0; i < len(good); i += step {
		for _, pos := range []int{i, len(good) - 1 - i%64} {
			bad := append([]byte{}, good...)
			bad[pos] ^= 0x10
			if err := Decrypt(new(bytes.Buffer), bytes.NewReader(bad), dataKey); err == nil {
				t.Fatalf("flipped byte %d of %d accepted", pos, len(good))
			}
		}
	}
	err := Decrypt(new(bytes.Buffer), bytes.NewReader(good), "ZZECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	if !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "footerKey") {
		t.Fatalf("wrong key: %v", err)
	}
	if err := Decrypt(new(bytes.Buffer), bytes.NewReader(plain), dataKey); err == nil {
		t.Fatal("plaintext file accepted as encrypted")
	}
	if err := Encrypt(new(bytes.Buffer), bytes.NewReader(good), dataKey, ""); err == nil {
		t.Fatal("encrypting an encrypted file accepted")
	}
	if _, _, err := MasterKeys("q83vEjRWeJCrze8SNFZ4kA=="); err == nil || !strings.Contains(err.Error(), "8 bytes") {
		t.Fatalf("24-character key: %v", err)
	}
	if err := Encrypt(new(bytes.Buffer), bytes.NewReader(plain), dataKey, "AES_XTS"); err == nil {
		t.Fatal("bad algorithm accepted")
	}
}
