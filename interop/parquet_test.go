package interop

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/client/kmskeys"
	"github.com/ppml-project/ppml/dataformat/bigdl"
	"github.com/ppml-project/ppml/dataformat/keysource"
)

// person is a row of the people dataset of BigDL's simple query example.
type person struct {
	Name string
	Age  int64
	Job  string
}

func (p person) String() string { return fmt.Sprintf("%s,%d,%s", p.Name, p.Age, p.Job) }

// people makes n rows: every job, ages 15 to 54.
func people(n int) []person {
	jobs := []string{"Developer", "Engineer", "Manager", "Developer", "Analyst"}
	rows := make([]person, n)
	for i := range rows {
		rows[i] = person{Name: fmt.Sprintf("person-%05d", i), Age: int64(15 + (i*7)%40), Job: jobs[i%len(jobs)]}
	}
	return rows
}

// simpleQuery is BigDL's SimpleQuerySparkExample over plaintext rows:
// developers aged 20 to 40, sorted for comparison.
func simpleQuery(rows []person) []string {
	var out []string
	for _, p := range rows {
		if p.Job == "Developer" && p.Age >= 20 && p.Age <= 40 {
			out = append(out, p.String())
		}
	}
	slices.Sort(out)
	return out
}

func writePeopleParquet(t *testing.T, path string, rows []person) {
	t.Helper()
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "age", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "job", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for _, p := range rows {
		b.Field(0).(*array.StringBuilder).Append(p.Name)
		b.Field(1).(*array.Int64Builder).Append(p.Age)
		b.Field(2).(*array.StringBuilder).Append(p.Job)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	tbl := array.NewTableFromRecords(sc, []arrow.RecordBatch{rec})
	defer tbl.Release()
	var buf bytes.Buffer
	if err := pqarrow.WriteTable(tbl, &buf, 500, nil, pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// readPeopleParquet reads every visible .parquet file under dir (plaintext).
func readPeopleParquet(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	files, _ := filepath.Glob(filepath.Join(dir, "*.parquet"))
	if len(files) == 0 {
		t.Fatalf("no .parquet files in %s", dir)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(b), nil, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		rr := array.NewTableReader(tbl, 1000)
		for rr.Next() {
			rec := rr.RecordBatch()
			col := func(name string) arrow.Array {
				idx := rec.Schema().FieldIndices(name)
				if len(idx) != 1 {
					t.Fatalf("%s: no column %q in %s", f, name, rec.Schema())
				}
				return rec.Column(idx[0])
			}
			names, jobs := col("name").(*array.String), col("job").(*array.String)
			for i := 0; i < int(rec.NumRows()); i++ {
				var age int64
				switch a := col("age").(type) {
				case *array.Int64:
					age = a.Value(i)
				case *array.Int32:
					age = int64(a.Value(i))
				default:
					t.Fatalf("%s: age is %s", f, a.DataType())
				}
				out = append(out, person{names.Value(i), age, jobs.Value(i)}.String())
			}
		}
		rr.Release()
		tbl.Release()
	}
	slices.Sort(out)
	return out
}

// dataKeyOf recovers the data-key string of a BigDL-format directory from its
// .meta through the KMS, as BigDL's PPMLContext does before it configures
// parquet-mr (here ppml's Go client does what PPMLContext's KeyLoader would:
// neither can be built from BigDL's source without its native core,
// docs/compatibility.md).
func dataKeyOf(t *testing.T, s *server, a app, dir string) string {
	t.Helper()
	wrapped, err := bigdl.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(a.KeyFile)
	e, err := client.NewEHSM(client.Config{URL: s.URL, CAFile: s.CAFile, AppID: a.ID, APIKey: string(key)})
	if err != nil {
		t.Fatal(err)
	}
	dk, err := (&kmskeys.EHSM{Client: e}).OpenDataKey(context.Background(), wrapped, keysource.KeyRef{})
	if err != nil {
		t.Fatal(err)
	}
	return dk
}

// parquetCryptoProperties are the Spark properties BigDL sets for Parquet
// modular encryption (reference: bigdl-data-format.md §6): parquet-mr's
// properties-driven crypto factory with its in-memory mock KMS, and the two
// master keys from the characters of the data-key string.
func parquetCryptoProperties(dataKey string) string {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	return strings.Join([]string{
		"spark.hadoop.parquet.crypto.factory.class=org.apache.parquet.crypto.keytools.PropertiesDrivenCryptoFactory",
		"spark.hadoop.parquet.encryption.kms.client.class=org.apache.parquet.crypto.keytools.mocks.InMemoryKMS",
		"spark.hadoop.parquet.encryption.key.list=footerKey: " + b64(dataKey[:16]) + ", key1: " + b64(dataKey[16:32]),
		"spark.ui.enabled=false",
		"spark.sql.shuffle.partitions=2",
		"",
	}, "\n")
}

// TestSparkParquetModularEncryption: the scale-out path with Parquet modular
// encryption. ppml encrypt --format parquet-modular writes the people
// dataset under a ppml KMS key; spark-submit --master local[2] reads it with
// parquet-mr's PropertiesDrivenCryptoFactory and the key list BigDL
// configures, runs BigDL's simple query and writes the result encrypted the
// same way; a second Spark job reads that back (parquet-mr to parquet-mr)
// and its rows equal the query over the plaintext.
// Then ppml decrypt and ppml sql read Spark's files (parquet-mr pads its
// encrypted page headers, which ppml re-frames for arrow-go:
// dataformat/parquetmod/paddedheaders.go).
func TestSparkParquetModularEncryption(t *testing.T) {
	s := startServe(t)
	a := s.enroll(t)
	env := s.env(a)
	keyID := jsonField(t, s.ppml(t, env, "key", "create", "--api-key-file", a.KeyFile, "--output", "json"), "keyid")

	dir := t.TempDir()
	rows := people(3000)
	plain := filepath.Join(dir, "people")
	writePeopleParquet(t, filepath.Join(plain, "part-00000.parquet"), rows[:1800])
	writePeopleParquet(t, filepath.Join(plain, "part-00001.parquet"), rows[1800:])
	writePeopleParquet(t, filepath.Join(plain, "part-00002.parquet"), nil) // an empty partition
	want := simpleQuery(rows)

	for _, alg := range []string{"AES_GCM_V1", "AES_GCM_CTR_V1"} {
		t.Run(alg, func(t *testing.T) {
			enc := filepath.Join(dir, alg, "encrypted-people")
			s.ppml(t, env, "encrypt", "--in", plain, "--out", enc, "--format", "parquet-modular",
				"--parquet-algorithm", alg, "--api-key-file", a.KeyFile, "--key-id", keyID, "-q")

			props := filepath.Join(dir, alg, "spark.properties")
			writeFile0600(t, props, parquetCryptoProperties(dataKeyOf(t, s, a, enc)))
			out := filepath.Join(dir, alg, "encrypted-out")
			log := sparkSubmit(t, nil, "--master", "local[2]", "--properties-file", props,
				"--driver-class-path", engines.ParquetJars+"/*",
				"--class", "ppml.interop.SimpleQuery", driverJar,
				"parquet-modular", enc, "parquet-modular", out, alg)
			if !strings.Contains(log, fmt.Sprintf("ppml-interop: developers=%d\n", len(want))) {
				t.Errorf("Spark counted other developers than %d:\n%s", len(want), tailString([]byte(log), 3000))
			}
			// Spark's output is encrypted (footer too): no plaintext in it.
			parts, _ := filepath.Glob(filepath.Join(out, "part-*.parquet"))
			if len(parts) == 0 {
				t.Fatalf("Spark wrote no part files to %s", out)
			}
			for _, p := range parts {
				b, _ := os.ReadFile(p)
				if !bytes.HasPrefix(b, []byte("PARE")) || bytes.Contains(b, []byte("person-")) || bytes.Contains(b, []byte("Developer")) {
					t.Fatalf("%s is not an encrypted-footer Parquet file (magic %q) or shows plaintext", p, b[:4])
				}
			}

			// parquet-mr reads its own output back with the same key list:
			// the rows are the query's.
			check := filepath.Join(dir, alg, "check-csv")
			sparkSubmit(t, nil, "--master", "local[2]", "--properties-file", props,
				"--driver-class-path", engines.ParquetJars+"/*",
				"--class", "ppml.interop.SimpleQuery", driverJar,
				"parquet-modular", out, "csv", check)
			if got := readCSVRows(t, check); !slices.Equal(got, want) {
				t.Fatalf("Spark's encrypted output holds %d rows, want %d (first %q, want %q)", len(got), len(want), first(got), first(want))
			}

			// BigDL's writer puts the data key's .meta next to the parts;
			// Spark alone does not, so the test copies the input's (same key).
			meta, _ := os.ReadFile(filepath.Join(enc, ".meta"))
			writeFile0600(t, filepath.Join(out, ".meta"), string(meta))
			dec := filepath.Join(dir, alg, "decrypted-out")
			s.ppml(t, env, "decrypt", "--in", out, "--out", dec, "--api-key-file", a.KeyFile, "-q")
			if got := readPeopleParquet(t, dec); !slices.Equal(got, want) {
				t.Fatalf("ppml decrypt of Spark's output: %d rows, want %d (first %q, want %q)", len(got), len(want), first(got), first(want))
			}

			// ppml sql reads Spark's part files too (one input each) and
			// writes its result in the same format, which ppml decrypt reads.
			res := filepath.Join(dir, alg, "sql-result")
			sqlArgs := []string{"sql"}
			var union []string
			for i, p := range parts {
				sqlArgs = append(sqlArgs, "--input", fmt.Sprintf("part%d=%s", i, p))
				union = append(union, fmt.Sprintf("SELECT name, age, job FROM part%d", i))
			}
			sqlArgs = append(sqlArgs, "--query", "SELECT * FROM ("+strings.Join(union, " UNION ALL ")+") WHERE age >= 30",
				"--output", res, "--output-format", "parquet", "--api-key-file", a.KeyFile, "--key-id", keyID)
			s.ppml(t, env, sqlArgs...)
			resDec := filepath.Join(dir, alg, "sql-result-decrypted")
			s.ppml(t, env, "decrypt", "--in", res, "--out", resDec, "--api-key-file", a.KeyFile, "-q")
			var want30 []string
			for _, p := range rows {
				if p.Job == "Developer" && p.Age >= 30 && p.Age <= 40 {
					want30 = append(want30, p.String())
				}
			}
			slices.Sort(want30)
			if got := readPeopleParquet(t, resDec); !slices.Equal(got, want30) {
				t.Fatalf("ppml sql over Spark's output: %d rows, want %d (first %q, want %q)", len(got), len(want30), first(got), first(want30))
			}
		})
	}
}

// readCSVRows reads the part files of a Spark CSV output (with header
// name,age,job), sorted.
func readCSVRows(t *testing.T, dir string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "part-*.csv"))
	if len(files) == 0 {
		t.Fatalf("no part-*.csv in %s", dir)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) == 0 || lines[0] != "name,age,job" {
			t.Fatalf("%s: header %q, want name,age,job", f, first(lines))
		}
		out = append(out, lines[1:]...)
	}
	slices.Sort(out)
	return out
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
