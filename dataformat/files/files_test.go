package files

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/dataformat/bigdl"
	"github.com/ppml-project/ppml/dataformat/keysource"
	"github.com/ppml-project/ppml/internal/atomicfile"
)

func pk(t *testing.T, b64 string) *keysource.PlainText {
	p, err := keysource.NewPlainText(b64)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var files = map[string]int{
	"a.csv":                   100,
	"empty.txt":               0,
	"sub/part-00000.csv":      70_001,
	"sub/part-00001.csv":      16,
	"sub/deeper/x.json":       1 << 20,
	"sub/_SUCCESS":            0,
	"sub/.part-00000.csv.crc": 12,
}

func makeTree(t *testing.T) string {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 1))
	for name, n := range files {
		p := filepath.Join(dir, "in", name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "in")
}

func listTree(t *testing.T, root string) []string {
	var out []string
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
		t.Fatalf("%s and %s differ (%v %v)", a, b, err1, err2)
	}
}

func TestTreeRoundTrip(t *testing.T) {
	ctx := context.Background()
	keys := pk(t, "EREREREREREREREREREREQ==")
	for _, f := range []Format{FormatPPML, FormatBigDL} {
		t.Run(string(f), func(t *testing.T) {
			in := makeTree(t)
			enc := filepath.Join(filepath.Dir(in), "enc")
			dec := filepath.Join(filepath.Dir(in), "dec")
			var started, progressed int64
			res, err := Encrypt(ctx, in, enc, Options{Format: f, Keys: keys,
				Start:    func(total int64, n int) { started = total },
				Progress: func(d int64) { progressed += d }})
			if err != nil {
				t.Fatal(err)
			}
			if progressed != started || started == 0 {
				t.Fatalf("progress %d of %d", progressed, started)
			}
			got := listTree(t, enc)
			var want []string
			switch f {
			case FormatPPML:
				for name := range files {
					want = append(want, name+".ppml")
				}
			case FormatBigDL:
				want = []string{".meta", "a.csv.cbc", "empty.txt.cbc", "sub/.meta", "sub/deeper/.meta", "sub/deeper/x.json.cbc", "sub/part-00000.csv.cbc", "sub/part-00001.csv.cbc"}
				if len(res.Skipped) != 2 {
					t.Fatalf("skipped %v", res.Skipped)
				}
				edk, err := bigdl.ReadMeta(filepath.Join(enc, "sub"))
				if err != nil {
					t.Fatal(err)
				}
				top, _ := bigdl.ReadMeta(enc)
				if edk != top {
					t.Fatal("one data key per run expected")
				}
				// The wrapped key is BigDL's ECB form, openable by BigDL.
				dk, err := keysource.UnwrapECB(bytes.Repeat([]byte{0x11}, 16), edk)
				if err != nil || len(dk) != 44 {
					t.Fatalf("unwrap: %q %v", dk, err)
				}
			}
			sort.Strings(want)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("encrypted tree:\n got %v\nwant %v", got, want)
			}
			for _, format := range []Format{FormatAuto, f} {
				os.RemoveAll(dec)
				if _, err := Decrypt(ctx, enc, dec, Options{Format: format, Keys: keys}); err != nil {
					t.Fatal(err)
				}
				for _, name := range listTree(t, dec) {
					sameFile(t, filepath.Join(in, name), filepath.Join(dec, name))
				}
				n := len(listTree(t, dec))
				if f == FormatBigDL && n != len(files)-2 || f == FormatPPML && n != len(files) {
					t.Fatalf("decrypted %d files: %v", n, listTree(t, dec))
				}
			}
			// Refuses to overwrite without Overwrite.
			if _, err := Decrypt(ctx, enc, dec, Options{Keys: keys}); err == nil || !strings.Contains(err.Error(), "already exists") {
				t.Fatalf("overwrite: %v", err)
			}
			if _, err := Decrypt(ctx, enc, dec, Options{Keys: keys, Overwrite: true}); err != nil {
				t.Fatal(err)
			}
			// Wrong primary key.
			os.RemoveAll(dec)
			if _, err := Decrypt(ctx, enc, dec, Options{Keys: pk(t, "IiIiIiIiIiIiIiIiIiIiIg==")}); err == nil {
				t.Fatal("wrong key accepted")
			}
			assertNoOutput(t, dec)
		})
	}
}

// assertNoOutput checks that a failed run left no decrypted file and no
// temporary file behind.
func assertNoOutput(t *testing.T, dir string) {
	t.Helper()
	for _, n := range listTree(t, dir) {
		t.Fatalf("failed run left %s", n)
	}
}

func TestTreeTamper(t *testing.T) {
	ctx := context.Background()
	keys := pk(t, "EREREREREREREREREREREQ==")
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	os.MkdirAll(in, 0o755)
	plain := bytes.Repeat([]byte("0123456789abcdef"), 20_000)
	os.WriteFile(filepath.Join(in, "data.csv"), plain, 0o644)
	for _, f := range []Format{FormatPPML, FormatBigDL} {
		enc := filepath.Join(dir, "enc-"+string(f))
		if _, err := Encrypt(ctx, in, enc, Options{Format: f, Keys: keys, ChunkSize: 4096}); err != nil {
			t.Fatal(err)
		}
		name := "data.csv" + encExt(f)
		good, _ := os.ReadFile(filepath.Join(enc, name))
		positions := []int{0, 5, 20, 60, 100, 399, 400, 401, len(good) / 2, len(good) - 33, len(good) - 32, len(good) - 1}
		if f == FormatBigDL {
			// The 16-byte IV (bytes 8+L..24+L) is outside BigDL's MAC; see
			// bigdl.TestIVNotAuthenticated.
			h, _ := bigdl.ParseHeader(good)
			ivAt := 8 + len(h.EncryptedDataKey)
			var ps []int
			for _, p := range positions {
				if p < ivAt || p >= ivAt+16 {
					ps = append(ps, p)
				}
			}
			positions = ps
		}
		for _, pos := range positions {
			bad := append([]byte{}, good...)
			bad[pos] ^= 0x04
			os.WriteFile(filepath.Join(enc, name), bad, 0o644)
			dec := filepath.Join(dir, "dec")
			os.RemoveAll(dec)
			_, err := Decrypt(ctx, enc, dec, Options{Keys: keys})
			if err == nil {
				t.Fatalf("%s: flipped byte %d accepted", f, pos)
			}
			assertNoOutput(t, dec)
			// Single-file mode too.
			out := filepath.Join(dir, "single.out")
			if _, err := Decrypt(ctx, filepath.Join(enc, name), out, Options{Keys: keys}); err == nil {
				t.Fatalf("%s: single-file: flipped byte %d accepted", f, pos)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Fatalf("output left behind")
			}
			for _, n := range listTree(t, dir) {
				if atomicfile.IsTemp(filepath.Base(n)) {
					t.Fatalf("temporary file %s left", n)
				}
			}
		}
		os.WriteFile(filepath.Join(enc, name), good, 0o644)
		if f == FormatBigDL {
			meta, _ := os.ReadFile(filepath.Join(enc, ".meta"))
			for pos := range meta {
				bad := append([]byte{}, meta...)
				bad[pos] ^= 0x01
				os.WriteFile(filepath.Join(enc, ".meta"), bad, 0o644)
				dec := filepath.Join(dir, "dec")
				os.RemoveAll(dec)
				if _, err := Decrypt(ctx, enc, dec, Options{Keys: keys}); err == nil {
					t.Fatalf(".meta flipped byte %d (%q) accepted", pos, bad)
				}
				assertNoOutput(t, dec)
			}
			os.WriteFile(filepath.Join(enc, ".meta"), meta, 0o644)
		}
		dec := filepath.Join(dir, "dec")
		os.RemoveAll(dec)
		if _, err := Decrypt(ctx, enc, dec, Options{Keys: keys}); err != nil {
			t.Fatal(err)
		}
		sameFile(t, filepath.Join(in, "data.csv"), filepath.Join(dec, "data.csv"))
	}
}

func TestSingleFileAndErrors(t *testing.T) {
	ctx := context.Background()
	keys := pk(t, "EREREREREREREREREREREQ==")
	dir := t.TempDir()
	in := filepath.Join(dir, "people.csv")
	os.WriteFile(in, []byte("name,age\nalice,30\n"), 0o644)
	for _, f := range []Format{FormatPPML, FormatBigDL} {
		res, err := Encrypt(ctx, in, "", Options{Format: f, Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		want := in + encExt(f)
		if len(res.Outputs) != 1 || res.Outputs[0] != want {
			t.Fatalf("%v", res.Outputs)
		}
		if fm, _ := Detect(want); fm != f {
			t.Fatalf("Detect = %q", fm)
		}
		os.Rename(in, in+".orig")
		if _, err := Decrypt(ctx, want, "", Options{Keys: keys}); err != nil {
			t.Fatal(err)
		}
		sameFile(t, in, in+".orig")
		os.Remove(in)
		os.Rename(in+".orig", in)
		if f == FormatBigDL {
			os.Remove(filepath.Join(dir, ".meta"))
		}
	}
	if _, err := Encrypt(ctx, in, filepath.Join(dir, "x.enc"), Options{Format: FormatBigDL, Keys: keys}); err == nil || !strings.Contains(err.Error(), ".cbc") {
		t.Fatalf("non-.cbc BigDL output: %v", err)
	}
	if _, err := Decrypt(ctx, in, filepath.Join(dir, "o"), Options{Keys: keys}); err == nil || !strings.Contains(err.Error(), "not encrypted") {
		t.Fatalf("plaintext input: %v", err)
	}
	if _, err := Encrypt(ctx, dir, filepath.Join(dir, "sub"), Options{Keys: keys}); err == nil || !strings.Contains(err.Error(), "inside") {
		t.Fatalf("out inside in: %v", err)
	}
	if _, err := Encrypt(ctx, filepath.Join(dir, "missing"), "", Options{Keys: keys}); err == nil {
		t.Fatal("missing input")
	}
	if _, err := ParseFormat("zip"); err == nil {
		t.Fatal("bad format accepted")
	}
}

// TestEmptyBigDLPartition: BigDLEncryptCompressor writes nothing at all for
// an empty Spark partition, so a dataset directory holds 0-byte .cbc part
// files next to real ones. They decrypt to 0-byte outputs; a truncated
// non-empty part is still refused, with no output left behind.
func TestEmptyBigDLPartition(t *testing.T) {
	ctx := context.Background()
	keys := pk(t, "EREREREREREREREREREREQ==")
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	os.MkdirAll(in, 0o755)
	plain := []byte("name,age\nalice,30\n")
	os.WriteFile(filepath.Join(in, "part-00000.csv"), plain, 0o644)
	enc := filepath.Join(dir, "enc")
	if _, err := Encrypt(ctx, in, enc, Options{Format: FormatBigDL, Keys: keys}); err != nil {
		t.Fatal(err)
	}
	// Spark's layout: two empty partitions and the _SUCCESS marker.
	for _, n := range []string{"part-00001.csv.cbc", "part-00002.csv.cbc", "_SUCCESS"} {
		os.WriteFile(filepath.Join(enc, n), nil, 0o644)
	}
	dec := filepath.Join(dir, "dec")
	if _, err := Decrypt(ctx, enc, dec, Options{Keys: keys}); err != nil {
		t.Fatalf("directory with empty partitions: %v", err)
	}
	sameFile(t, filepath.Join(in, "part-00000.csv"), filepath.Join(dec, "part-00000.csv"))
	for _, n := range []string{"part-00001.csv", "part-00002.csv"} {
		if st, err := os.Stat(filepath.Join(dec, n)); err != nil || st.Size() != 0 {
			t.Fatalf("%s: %v, want a 0-byte file", n, err)
		}
	}
	// Also alone, and with the format named.
	one := filepath.Join(dir, "one.csv")
	if _, err := Decrypt(ctx, filepath.Join(enc, "part-00001.csv.cbc"), one, Options{Keys: keys, Format: FormatBigDL}); err != nil {
		t.Fatalf("single empty part: %v", err)
	}
	if st, err := os.Stat(one); err != nil || st.Size() != 0 {
		t.Fatalf("single empty part output: %v", err)
	}
	// A truncated part (1 byte, a partial header, a header without
	// ciphertext) is an error, not an empty partition.
	good, _ := os.ReadFile(filepath.Join(enc, "part-00000.csv.cbc"))
	for _, n := range []int{1, 16, bigdl.HeaderSize - 1, bigdl.HeaderSize, len(good) - 1} {
		os.WriteFile(filepath.Join(enc, "part-00001.csv.cbc"), good[:n], 0o644)
		bad := filepath.Join(dir, "bad")
		if _, err := Decrypt(ctx, enc, bad, Options{Keys: keys}); err == nil {
			t.Fatalf("part truncated to %d bytes accepted", n)
		}
		// The good part may have been written first; the truncated one never is.
		if _, err := os.Stat(filepath.Join(bad, "part-00001.csv")); !os.IsNotExist(err) {
			t.Fatalf("part truncated to %d bytes left an output: %v", n, err)
		}
		os.RemoveAll(bad)
	}
	// A 0-byte file without the .cbc name is not taken for an empty part.
	os.WriteFile(filepath.Join(enc, "part-00001.csv.cbc"), nil, 0o644)
	os.WriteFile(filepath.Join(enc, "part-00003.csv"), nil, 0o644)
	if _, err := Decrypt(ctx, enc, filepath.Join(dir, "bad2"), Options{Keys: keys}); err == nil || !strings.Contains(err.Error(), "part-00003.csv") {
		t.Fatalf("0-byte file without .cbc: %v", err)
	}
}

// Outputs are private: plaintext is decrypted into files 0600 in new
// directories 0700, whatever the umask and the input's modes.
func TestOutputModes(t *testing.T) {
	ctx := context.Background()
	keys := pk(t, "EREREREREREREREREREREQ==")
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	os.MkdirAll(filepath.Join(in, "sub"), 0o755)
	os.WriteFile(filepath.Join(in, "sub", "data.csv"), []byte("name,age\nalice,30\n"), 0o644)
	for _, f := range []Format{FormatPPML, FormatBigDL} {
		enc := filepath.Join(dir, "enc-"+string(f))
		out := filepath.Join(dir, "out-"+string(f))
		if _, err := Encrypt(ctx, in, enc, Options{Format: f, Keys: keys}); err != nil {
			t.Fatal(err)
		}
		if _, err := Decrypt(ctx, enc, out, Options{Keys: keys}); err != nil {
			t.Fatal(err)
		}
		for _, root := range []string{enc, out} {
			filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err != nil || p == root {
					return err
				}
				st, _ := os.Stat(p)
				want := os.FileMode(0o600)
				if d.IsDir() {
					want = 0o700
				}
				if st.Mode().Perm() != want {
					t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), want)
				}
				return nil
			})
		}
	}
}
