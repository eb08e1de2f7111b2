package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

func main() {
	target, _ := strconv.ParseInt(os.Args[2], 10, 64)
	f, err := os.Create(os.Args[1])
	if err != nil {
		panic(err)
	}
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "value", Type: arrow.PrimitiveTypes.Float64},
		{Name: "name", Type: arrow.BinaryTypes.String},
	}, nil)
	w, err := pqarrow.NewFileWriter(sc, f, parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Uncompressed), parquet.WithDictionaryDefault(false)), pqarrow.DefaultWriterProps())
	if err != nil {
		panic(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	id := int64(0)
	for w.TotalBytesWritten() < target {
		b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
		for range 1 << 16 {
			b.Field(0).(*array.Int64Builder).Append(id)
			b.Field(1).(*array.Float64Builder).Append(rng.Float64())
			b.Field(2).(*array.StringBuilder).Append(fmt.Sprintf("name-%016x", rng.Uint64()))
			id++
		}
		rec := b.NewRecordBatch()
		if err := w.Write(rec); err != nil {
			panic(err)
		}
		rec.Release()
		b.Release()
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
}
