package parquetmod

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// parquetMRFile was written by Spark 3.1.3 with parquet-mr 1.13.0
// (PropertiesDrivenCryptoFactory, InMemoryKMS, BigDL's key list from
// parquetMRDataKey, AES_GCM_V1; interop.TestSparkParquetModularEncryption):
// BigDL's simple query over a generated people dataset, 675 rows. Its page
// headers carry parquet-mr's zero padding.
const (
	parquetMRFile    = "testdata/parquet-mr-1.13.0-aes-gcm-v1.parquet"
	parquetMRDataKey = "jIk6BwQpwxSnw0WzpybwknlOmxRCK0AtslopvpuGuIg="
)

func TestReadsParquetMRPaddedHeaders(t *testing.T) {
	b, err := os.ReadFile(parquetMRFile)
	if err != nil {
		t.Fatal(err)
	}
	// The first page header decrypts to more than its Thrift struct.
	if n := binary.LittleEndian.Uint32(b[4:]); n != gcmNonceSize+100+gcmTagSize {
		t.Fatalf("first header module is %d bytes: not the padded layout this test is about", n)
	}
	var out bytes.Buffer
	if err := Decrypt(&out, bytes.NewReader(b), parquetMRDataKey); err != nil {
		t.Fatal(err)
	}
	tbl, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(out.Bytes()), nil, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if tbl.NumRows() != 675 || tbl.NumCols() != 3 {
		t.Fatalf("%d rows, %d columns; want 675, 3", tbl.NumRows(), tbl.NumCols())
	}
	rr := array.NewTableReader(tbl, 1000)
	defer rr.Release()
	for rr.Next() {
		rec := rr.RecordBatch()
		jobs := rec.Column(2).(*array.String)
		ages := rec.Column(1).(*array.Int64)
		for i := range int(rec.NumRows()) {
			if jobs.Value(i) != "Developer" || ages.Value(i) < 20 || ages.Value(i) > 40 {
				t.Fatalf("row %d: %s, %d: not the query's", i, jobs.Value(i), ages.Value(i))
			}
		}
	}

	// A changed byte in a padded header, in its padding or in page data is
	// refused: the original header is authenticated before it is re-framed.
	for name, off := range map[string]int{"header struct": 4 + 4 + gcmNonceSize + 2, "header padding": 4 + 4 + gcmNonceSize + 90, "page data": 4 + 132 + 100} {
		bad := bytes.Clone(b)
		bad[off] ^= 1
		var sink bytes.Buffer
		if err := Decrypt(&sink, bytes.NewReader(bad), parquetMRDataKey); err == nil || !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s modified: err = %v, want ErrDecrypt", name, err)
		}
	}
}

func TestThriftStructLen(t *testing.T) {
	// A DictionaryPageHeader as parquet-mr wrote it, then its padding.
	hdr := []byte{0x15, 0x04, 0x15, 0x1a, 0x15, 0x5e, 0x4c, 0x15, 0x02, 0x15, 0x04, 0x00, 0x00}
	if n, err := thriftStructLen(append(hdr, make([]byte, 87)...)); err != nil || n != len(hdr) {
		t.Fatalf("thriftStructLen = %d, %v; want %d", n, err, len(hdr))
	}
	if _, err := thriftStructLen([]byte{0x15}); err == nil {
		t.Fatal("truncated struct accepted")
	}
}
