package trustedsql_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/ppml-project/ppml/agent"
	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/client/kmskeys"
	"github.com/ppml-project/ppml/dataformat/bigdl"
	"github.com/ppml-project/ppml/dataformat/keysource"
	"github.com/ppml-project/ppml/dataformat/stream"
	"github.com/ppml-project/ppml/enclave"
	"github.com/ppml-project/ppml/quote/sim"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
	"github.com/ppml-project/ppml/trustedsql"
)

const peopleCSV = "name,age,job\nann,30,Developer\nbob,50,Tester\n\"carl, jr\",25,Developer\ndora,41,Developer\n"
const salaryCSV = "name,salary\nann,100\nbob,90\n\"carl, jr\",80\n"
const joinQuery = `SELECT p.name, p.age, s.salary FROM people p JOIN salary s USING (name) WHERE p.job = 'Developer' AND p.age BETWEEN 20 AND 40 ORDER BY p.name`
const joinWant = "name,age,salary\nann,30,100\n\"carl, jr\",25,80\n"

func plainKeys(t *testing.T) *keysource.PlainText {
	k, err := keysource.NewPlainText("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func encPPML(t *testing.T, keys keysource.Source, dir, name, content string) string {
	t.Helper()
	dk, err := keys.NewDataKey(context.Background(), keysource.Request{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := stream.Encrypt(&b, strings.NewReader(content), dk, &stream.Options{ChunkSize: 64}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".csv.ppml")
	os.WriteFile(p, b.Bytes(), 0o600)
	return p
}

func decPPML(t *testing.T, keys keysource.Source, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b bytes.Buffer
	if _, _, err := stream.Decrypt(&b, f, stream.KeyFromSource(func(w string, r keysource.KeyRef) (string, error) {
		return keys.OpenDataKey(context.Background(), w, r)
	}), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// isolate points TMPDIR at an empty directory, so a test can assert that
// nothing was left there (pipes are created under it).
func isolate(t *testing.T) string {
	d := t.TempDir()
	t.Setenv("TMPDIR", d)
	return d
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("%s not empty: %v", dir, ents)
	}
}

func TestJoinCSVAndParquetOutput(t *testing.T) {
	tmp := isolate(t)
	keys := plainKeys(t)
	dir := t.TempDir()
	people := encPPML(t, keys, dir, "people", peopleCSV)
	salary := encPPML(t, keys, dir, "salary", salaryCSV)
	spill := filepath.Join(t.TempDir(), "spill")
	in := []trustedsql.Input{{Name: "people", Path: people}, {Name: "salary", Path: salary}}

	out := filepath.Join(dir, "result.csv.ppml")
	res, err := trustedsql.Run(context.Background(), trustedsql.Options{Inputs: in, Query: joinQuery, Output: out, Keys: keys, TempDir: spill, MemoryLimit: "256MB"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 2 || res.InputBytes != int64(len(peopleCSV)+len(salaryCSV)) {
		t.Fatalf("result %+v", res)
	}
	raw, _ := os.ReadFile(out)
	if !stream.IsEncrypted(raw) || bytes.Contains(raw, []byte("ann")) {
		t.Fatal("output is not ppml-encrypted")
	}
	if got := string(decPPML(t, keys, out)); got != joinWant {
		t.Fatalf("join result %q, want %q", got, joinWant)
	}
	assertEmpty(t, tmp)

	// Parquet output: ppml-encrypted Parquet bytes.
	outPQ := filepath.Join(dir, "result.parquet.ppml")
	if _, err := trustedsql.Run(context.Background(), trustedsql.Options{Inputs: in, Query: joinQuery, Output: outPQ, OutputFormat: "parquet", Keys: keys}); err != nil {
		t.Fatal(err)
	}
	pq := decPPML(t, keys, outPQ)
	if !bytes.HasPrefix(pq, []byte("PAR1")) {
		t.Fatalf("not parquet: %q", pq[:8])
	}
	plainPQ := filepath.Join(t.TempDir(), "check.parquet") // test-only plaintext, to check the content
	os.WriteFile(plainPQ, pq, 0o600)
	db, _ := sql.Open("duckdb", "")
	defer db.Close()
	var names string
	var sum int
	if err := db.QueryRow("SELECT string_agg(name, '|' ORDER BY name), sum(salary) FROM read_parquet('"+plainPQ+"')").Scan(&names, &sum); err != nil {
		t.Fatal(err)
	}
	if names != "ann|carl, jr" || sum != 180 {
		t.Fatalf("parquet result %q %d", names, sum)
	}

	// An existing output is not replaced without Overwrite; the query cannot reach files.
	if _, err := trustedsql.Run(context.Background(), trustedsql.Options{Inputs: in, Query: joinQuery, Output: out, Keys: keys}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("existing output: %v", err)
	}
	leak := filepath.Join(t.TempDir(), "leak.csv")
	_, err = trustedsql.Run(context.Background(), trustedsql.Options{Inputs: in, Query: "SELECT * FROM read_csv('" + people + "')", Output: filepath.Join(dir, "x"), Keys: keys})
	if err == nil || !strings.Contains(err.Error(), "disabled by configuration") {
		t.Fatalf("query reading a file: %v", err)
	}
	_, err = trustedsql.Run(context.Background(), trustedsql.Options{Inputs: in, Query: "SELECT 1); COPY people TO '" + leak + "'; SELECT (1", Output: filepath.Join(dir, "y"), Keys: keys})
	if err == nil {
		t.Fatal("multi-statement query accepted")
	}
	if _, err := os.Stat(leak); err == nil {
		t.Fatal("the query wrote plaintext")
	}
	for _, p := range []string{filepath.Join(dir, "x"), filepath.Join(dir, "y")} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s written by a failed query", p)
		}
	}
	assertEmpty(t, tmp)
}

func TestTamperedInputRefused(t *testing.T) {
	tmp := isolate(t)
	keys := plainKeys(t)
	dir := t.TempDir()
	big := strings.Repeat("eve,33,Developer\n", 20000)
	people := encPPML(t, keys, dir, "people", "name,age,job\n"+big)
	raw, _ := os.ReadFile(people)
	for _, tc := range []struct {
		name string
		edit func([]byte) []byte
	}{
		{"bit flip late in the file", func(b []byte) []byte { b = bytes.Clone(b); b[len(b)-100] ^= 1; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-len(b)/3] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(dir, "bad.csv.ppml")
			os.WriteFile(bad, tc.edit(raw), 0o600)
			out := filepath.Join(dir, "out.ppml")
			_, err := trustedsql.Run(context.Background(), trustedsql.Options{Inputs: []trustedsql.Input{{Name: "people", Path: bad}},
				Query: "SELECT count(*) AS n FROM people", Output: out, Keys: keys})
			if err == nil || !errors.Is(err, trustedsql.ErrInput) {
				t.Fatalf("tampered input: %v", err)
			}
			t.Log(err)
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), "out") || strings.Contains(e.Name(), ".ppml-tmp-") {
					t.Fatalf("output left behind: %s", e.Name())
				}
			}
			assertEmpty(t, tmp)
		})
	}
}

func TestBigDLInBigDLOut(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	keys := plainKeys(t)
	dir := filepath.Join(t.TempDir(), "people")
	os.MkdirAll(dir, 0o700)
	dk, err := keys.NewDataKey(ctx, keysource.Request{BigDL: true})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Create(filepath.Join(dir, "part-0.csv.cbc"))
	if _, err := bigdl.Encrypt(f, strings.NewReader(peopleCSV), dk.Plaintext, dk.Wrapped); err != nil {
		t.Fatal(err)
	}
	f.Close()
	bigdl.WriteMeta(dir, dk.Wrapped)
	salary := encPPML(t, keys, t.TempDir(), "salary", salaryCSV) // mixed formats: the first input decides
	out := filepath.Join(t.TempDir(), "result")
	res, err := trustedsql.Run(ctx, trustedsql.Options{Inputs: []trustedsql.Input{{Name: "people", Path: filepath.Join(dir, "part-0.csv.cbc")}, {Name: "salary", Path: salary}},
		Query: joinQuery, Output: out, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Outputs) != 2 {
		t.Fatalf("outputs %v", res.Outputs)
	}
	w, err := bigdl.ReadMeta(out)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keys.OpenDataKey(ctx, w, keysource.KeyRef{})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := os.Open(filepath.Join(out, "part-00000.csv.cbc"))
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	st, _ := ct.Stat()
	var b bytes.Buffer
	if _, err := bigdl.Decrypt(&b, ct, st.Size(), bigdl.StaticKey(key, w)); err != nil {
		t.Fatal(err)
	}
	if b.String() != joinWant {
		t.Fatalf("BigDL output %q", b.String())
	}

	// Parquet output from BigDL input: parquet-modular + .meta.
	outPQ := filepath.Join(t.TempDir(), "result-pq")
	if _, err := trustedsql.Run(ctx, trustedsql.Options{Inputs: []trustedsql.Input{{Name: "people", Path: filepath.Join(dir, "part-0.csv.cbc")}},
		Query: "SELECT * FROM people", Output: outPQ, OutputFormat: "parquet", Keys: keys}); err != nil {
		t.Fatal(err)
	}
	pq, _ := os.ReadFile(filepath.Join(outPQ, "part-00000.parquet"))
	if !bytes.HasPrefix(pq, []byte("PARE")) {
		t.Fatalf("not parquet-modular: %q", pq[:4])
	}
	// ... and it reads back as an input (parquet-modular → memfd → DuckDB).
	outBack := filepath.Join(t.TempDir(), "back")
	res, err = trustedsql.Run(ctx, trustedsql.Options{Inputs: []trustedsql.Input{{Name: "p", Path: filepath.Join(outPQ, "part-00000.parquet")}},
		Query: "SELECT count(*) FROM p WHERE job = 'Developer'", Output: outBack, Keys: keys})
	if err != nil || res.Rows != 1 {
		t.Fatalf("parquet-modular input: %v %+v", err, res)
	}
}

var (
	goodMR  = [32]byte{0x68, 0x82, 0x3b, 0xc6}
	otherMR = [32]byte{0x33, 0xd8}
	signer  = [32]byte{0x9a, 0xff}
)

func TestAttested(t *testing.T) {
	tmp := isolate(t)
	ctx := context.Background()
	inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) { c.AllowSimulation = true }})
	simDir := filepath.Join(inst.DataDir, "sim")
	_, workload := inst.Enroll(t)
	_, owner := inst.Enroll(t)
	as, _ := client.NewAttestation(workload)
	p, err := as.CreatePolicy(ctx, json.RawMessage(fmt.Sprintf(`{"tee":"sgx","mr_enclave":[%q],"mr_signer":[%q],"allow_simulated":true,"require_crl":false}`,
		hex.EncodeToString(goodMR[:]), hex.EncodeToString(signer[:]))))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := client.NewNative(workload)
	k, err := n.CreateKey(ctx, client.KeyOptions{ReleasePolicies: []string{p.ID}, Decrypters: []string{owner.AppID}})
	if err != nil {
		t.Fatal(err)
	}
	eOwner, _ := client.NewEHSM(owner)
	ownerKeys := &kmskeys.EHSM{Client: eOwner, KeyID: k.ID}
	dir := t.TempDir()
	people := encPPML(t, ownerKeys, dir, "people", peopleCSV)
	salary := encPPML(t, ownerKeys, dir, "salary", salaryCSV)
	in := []trustedsql.Input{{Name: "people", Path: people}, {Name: "salary", Path: salary}}
	eW, _ := client.NewEHSM(workload)

	source := func(mr [32]byte) *agent.ReleaseSource {
		ed := filepath.Join(t.TempDir(), "attestation")
		if err := enclave.PrepareSim(ed, simDir, "sgx", sim.Measurements{MREnclave: mr, MRSigner: signer}); err != nil {
			t.Fatal(err)
		}
		q, err := enclave.Gramine(ed)
		if err != nil {
			t.Fatal(err)
		}
		s, err := agent.NewSession(workload, q, p.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		return &agent.ReleaseSource{Session: s, New: &kmskeys.EHSM{Client: eW, KeyID: k.ID}}
	}

	// Matching enclave: keys released, join runs, output readable by the owner.
	out := filepath.Join(dir, "result.csv.ppml")
	src := source(goodMR)
	if err := src.Session.Attest(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := trustedsql.Run(ctx, trustedsql.Options{Inputs: in, Query: joinQuery, Output: out, Keys: src}); err != nil {
		t.Fatal(err)
	}
	if got := string(decPPML(t, ownerKeys, out)); got != joinWant {
		t.Fatalf("attested join %q", got)
	}

	// Other MRENCLAVE: refused at attestation, before any input is decrypted.
	bad := source(otherMR)
	aerr := bad.Session.Attest(ctx)
	if aerr == nil || !strings.Contains(aerr.Error(), "mr_enclave") {
		t.Fatalf("attest with another MRENCLAVE: %v", aerr)
	}
	// Even if the caller ignores that, Run cannot open a key: the release attests again and is refused.
	out2 := filepath.Join(dir, "refused.csv.ppml")
	_, err = trustedsql.Run(ctx, trustedsql.Options{Inputs: in, Query: joinQuery, Output: out2, Keys: bad})
	if err == nil || !strings.Contains(err.Error(), "obtaining its data key") || !strings.Contains(err.Error(), "mr_enclave") || errors.Is(err, trustedsql.ErrInput) {
		t.Fatalf("policy mismatch: %v", err)
	}
	t.Log(err)
	if _, err := os.Stat(out2); err == nil {
		t.Fatal("output written after a refused attestation")
	}
	assertEmpty(t, tmp) // no pipe directory was even created
}
