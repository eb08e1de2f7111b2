package parquetmod

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

func benchFile(b *testing.B) []byte {
	sc := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "name", Type: arrow.BinaryTypes.String}}, nil)
	bl := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	for i := range 500_000 {
		bl.Field(0).(*array.Int64Builder).Append(int64(i))
		bl.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("name-%016x", i*7919))
	}
	rec := bl.NewRecordBatch()
	tbl := array.NewTableFromRecords(sc, []arrow.RecordBatch{rec})
	var buf bytes.Buffer
	if err := pqarrow.WriteTable(tbl, &buf, 100_000, nil, pqarrow.DefaultWriterProps()); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

func BenchmarkEncrypt(b *testing.B) {
	plain := benchFile(b)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		if err := Encrypt(io.Discard, bytes.NewReader(plain), dataKey, AlgGCM); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	plain := benchFile(b)
	var enc bytes.Buffer
	if err := Encrypt(&enc, bytes.NewReader(plain), dataKey, AlgGCM); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(enc.Len()))
	for b.Loop() {
		if err := Decrypt(io.Discard, bytes.NewReader(enc.Bytes()), dataKey); err != nil {
			b.Fatal(err)
		}
	}
}
