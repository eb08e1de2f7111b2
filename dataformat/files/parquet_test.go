package files

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/ppml-project/ppml/dataformat/bigdl"
	"github.com/ppml-project/ppml/dataformat/keysource"
)

func writeParquet(t *testing.T, path string, n int) {
	sc := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "job", Type: arrow.BinaryTypes.String}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for i := range n {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.StringBuilder).Append("Developer")
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	tbl := array.NewTableFromRecords(sc, []arrow.RecordBatch{rec})
	defer tbl.Release()
	var buf bytes.Buffer
	if err := pqarrow.WriteTable(tbl, &buf, 1000, nil, pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(path), 0o755)
	os.WriteFile(path, buf.Bytes(), 0o644)
}

func TestTreeParquet(t *testing.T) {
	ctx := context.Background()
	keys := pk(t, "EREREREREREREREREREREQ==")
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	writeParquet(t, filepath.Join(in, "part-00000.parquet"), 2500)
	writeParquet(t, filepath.Join(in, "sub", "part-00001.parquet"), 10)
	os.WriteFile(filepath.Join(in, "_SUCCESS"), nil, 0o644)
	enc := filepath.Join(dir, "enc")
	for _, alg := range []string{"AES_GCM_V1", "AES_GCM_CTR_V1"} {
		os.RemoveAll(enc)
		res, err := Encrypt(ctx, in, enc, Options{Format: FormatParquet, Keys: keys, ParquetAlgorithm: alg})
		if err != nil {
			t.Fatal(err)
		}
		if res.Files != 2 || len(res.Skipped) != 1 {
			t.Fatalf("%+v", res)
		}
		if got := strings.Join(listTree(t, enc), ","); got != ".meta,part-00000.parquet,sub/.meta,sub/part-00001.parquet" {
			t.Fatal(got)
		}
		if f, _ := Detect(filepath.Join(enc, "part-00000.parquet")); f != FormatParquet {
			t.Fatalf("Detect = %q", f)
		}
		dec := filepath.Join(dir, "dec")
		os.RemoveAll(dec)
		if _, err := Decrypt(ctx, enc, dec, Options{Keys: keys}); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(listTree(t, dec), ","); got != "part-00000.parquet,sub/part-00001.parquet" {
			t.Fatal(got)
		}
		b, _ := os.ReadFile(filepath.Join(dec, "part-00000.parquet"))
		tbl, err := pqarrow.ReadTable(ctx, bytes.NewReader(b), nil, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil || tbl.NumRows() != 2500 {
			t.Fatalf("decrypted table: %v", err)
		}
	}
	// Tampered .meta (another dataset's key): fails, no output.
	os.RemoveAll(filepath.Join(dir, "dec"))
	other, _ := keys.NewDataKey(ctx, keysourceReqBigDL())
	bigdl.WriteMeta(enc, other.Wrapped)
	if _, err := Decrypt(ctx, enc, filepath.Join(dir, "dec"), Options{Keys: keys}); err == nil {
		t.Fatal("wrong .meta accepted")
	}
	for _, n := range listTree(t, filepath.Join(dir, "dec")) {
		if !strings.HasPrefix(n, "sub/") {
			t.Fatalf("output %s left for the failing file", n)
		}
	}
}

func keysourceReqBigDL() keysource.Request { return keysource.Request{BigDL: true, Bytes: 32} }
