// Package files encrypts and decrypts a file or a directory tree in one of the
// supported formats, writing every output file atomically (package
// atomicfile) and processing files concurrently.
//
// Naming:
//
//   - ppml: NAME → NAME.ppml; decryption strips ".ppml".
//   - bigdl: NAME → NAME.cbc plus one ".meta" per output directory holding
//     the dataset's encryptedDataKey, as Spark with BigDL writes; decryption
//     writes the same relative paths without ".cbc". Files Hadoop treats as
//     hidden (names starting with "_" or ".", e.g. _SUCCESS, .crc files) are
//     skipped, as Spark would not read them.
//   - parquet-modular: NAME.parquet → NAME.parquet (Parquet modular
//     encryption, BigDL-compatible) plus ".meta"; hidden files skipped.
//
// One data key is created per run (per dataset, as BigDL does); the ppml
// format still derives a distinct key per file from a per-file random salt.
// Decryption finds the key from each file's header (ppml, bigdl) or the
// directory's .meta (bigdl, parquet), asking the key source once per
// distinct wrapped key.
package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/ppml-project/ppml/dataformat/keysource"
	"github.com/ppml-project/ppml/internal/atomicfile"
)

// Format names an encrypted file format.
type Format string

// Supported formats.
const (
	FormatAuto    Format = ""                // decryption only: detect from content
	FormatPPML    Format = "ppml"            // dataformat/stream
	FormatBigDL   Format = "bigdl"           // dataformat/bigdl (COMMON)
	FormatParquet Format = "parquet-modular" // dataformat/parquetmod
	// FormatNativeAESCBC is BigDL's unauthenticated nativeaescbc variant:
	// decryption only, never detected, only when asked for by name.
	FormatNativeAESCBC Format = "bigdl-nativeaescbc"
)

// PPMLExt is the extension given to ppml-format files.
const PPMLExt = ".ppml"

// ParseFormat validates a format name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case FormatPPML, FormatBigDL, FormatParquet, FormatNativeAESCBC:
		return f, nil
	case "auto", "":
		return FormatAuto, nil
	}
	return "", fmt.Errorf("unknown format %q: use ppml, bigdl or parquet-modular", s)
}

// ParseParquetAlgorithm reads --parquet-algorithm (any case): AES_GCM_V1
// or AES_GCM_CTR_V1; "" keeps the default.
func ParseParquetAlgorithm(s string) (string, error) {
	alg := strings.ToUpper(s)
	if alg != "" && alg != "AES_GCM_V1" && alg != "AES_GCM_CTR_V1" {
		return "", fmt.Errorf("--parquet-algorithm %q: use AES_GCM_V1 or AES_GCM_CTR_V1", s)
	}
	return alg, nil
}

// Options control a run.
type Options struct {
	// Format is the format to write, or to expect when decrypting
	// (FormatAuto detects it per file from its content).
	Format Format
	// Keys creates (encryption) and opens (decryption) data keys.
	Keys keysource.Source
	// Workers is the number of files processed at once (default GOMAXPROCS).
	Workers int
	// Overwrite allows replacing existing output files.
	Overwrite bool
	// ChunkSize is the ppml-format chunk size (default 64 KiB).
	ChunkSize int
	// ParquetAlgorithm is "AES_GCM_V1" (default) or "AES_GCM_CTR_V1".
	ParquetAlgorithm string
	// Start, if set, is called once before any work with the total number
	// of input bytes and files to process.
	Start func(totalBytes int64, files int)
	// Progress, if set, is called with increments of input bytes processed.
	// Calls are serialized.
	Progress func(delta int64)
	// NativeKey is the data-key string of FormatNativeAESCBC files (in
	// BigDL's plain-text mode, the primary key itself).
	NativeKey string
}

// Result summarizes a run.
type Result struct {
	Files   int      // files written (.meta not counted)
	Bytes   int64    // input bytes of those files
	Outputs []string // output paths written, sorted
	Skipped []string // input paths skipped (Hadoop hidden files)
}

type job struct {
	in, out string
	size    int64
}

type plan struct {
	jobs     []job
	metaDirs []string // output dirs that get a .meta (bigdl/parquet encryption)
	skipped  []string
}

func hadoopHidden(name string) bool {
	return strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".")
}

// walk lists regular files under in (a file or a directory), as paths
// relative to in ("" when in is a file).
func walk(in string) (isDir bool, files []string, sizes []int64, err error) {
	st, err := os.Stat(in)
	if err != nil {
		return false, nil, nil, fmt.Errorf("input: %w", err)
	}
	if !st.IsDir() {
		if !st.Mode().IsRegular() {
			return false, nil, nil, fmt.Errorf("input %s is not a regular file or directory", in)
		}
		return false, []string{""}, []int64{st.Size()}, nil
	}
	err = filepath.WalkDir(in, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if atomicfile.IsTemp(d.Name()) {
			return nil // leftovers of an interrupted run
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file (symbolic links and devices are not followed); remove it or copy the data it points to", p)
		}
		rel, _ := filepath.Rel(in, p)
		files = append(files, rel)
		sizes = append(sizes, info.Size())
		return nil
	})
	return true, files, sizes, err
}

func checkOutside(in, out string) error {
	ai, err1 := filepath.Abs(in)
	ao, err2 := filepath.Abs(out)
	if err1 != nil || err2 != nil {
		return nil
	}
	if ao == ai || strings.HasPrefix(ao, ai+string(filepath.Separator)) {
		return fmt.Errorf("output %s is inside the input directory %s; choose an output outside it", out, in)
	}
	return nil
}

func (o *Options) workers() int {
	if o.Workers > 0 {
		return o.Workers
	}
	return runtime.GOMAXPROCS(0)
}

func (o *Options) checkTargets(p *plan) error {
	if o.Overwrite {
		return nil
	}
	for _, j := range p.jobs {
		if _, err := os.Lstat(j.out); err == nil {
			return fmt.Errorf("output %s already exists; remove it or use --force to replace it", j.out)
		}
	}
	return nil
}

// run executes the jobs concurrently; the first error cancels the rest.
func (o *Options) run(ctx context.Context, p *plan, do func(ctx context.Context, j job, progress func(int64)) error) (Result, error) {
	var res Result
	res.Skipped = p.skipped
	var total int64
	for _, j := range p.jobs {
		total += j.size
	}
	if o.Start != nil {
		o.Start(total, len(p.jobs))
	}
	var pmu sync.Mutex
	progress := func(n int64) {
		if o.Progress != nil && n != 0 {
			pmu.Lock()
			o.Progress(n)
			pmu.Unlock()
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan job)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range min(o.workers(), max(1, len(p.jobs))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if ctx.Err() != nil {
					continue
				}
				if err := os.MkdirAll(filepath.Dir(j.out), 0o700); err != nil {
					err = fmt.Errorf("creating output directory: %w", err)
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					cancel()
					continue
				}
				err := do(ctx, j, progress)
				mu.Lock()
				if err != nil {
					firstErr = cmpErr(firstErr, fmt.Errorf("%s: %w", j.in, err))
					cancel()
				} else {
					res.Files++
					res.Bytes += j.size
					res.Outputs = append(res.Outputs, j.out)
				}
				mu.Unlock()
			}
		}()
	}
	for _, j := range p.jobs {
		jobs <- j
	}
	close(jobs)
	wg.Wait()
	sort.Strings(res.Outputs)
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return res, firstErr
}

func cmpErr(first, err error) error {
	if first == nil || errors.Is(first, context.Canceled) {
		return err
	}
	return first
}

// writeAtomic creates out atomically with the contents produced by fill,
// mode 0600 (decrypted outputs are plaintext; new directories are 0700).
func writeAtomic(out string, fill func(w io.Writer) error) error {
	f, err := atomicfile.Create(out, 0o600)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := fill(f); err != nil {
		return err
	}
	return f.Commit()
}

// countingReader reports bytes read.
type countingReader struct {
	r        io.Reader
	ctx      context.Context
	progress func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.progress(int64(n))
	return n, err
}

// keyCache opens each distinct wrapped key once.
type keyCache struct {
	src keysource.Source
	ctx context.Context
	mu  sync.Mutex
	m   map[string]string
}

func (k *keyCache) open(wrapped string, ref keysource.KeyRef) (string, error) {
	if k.src == nil {
		return "", errors.New("no key source given: supply the primary key or KMS that protects this data")
	}
	id := ref.String() + "\x00" + wrapped
	k.mu.Lock()
	defer k.mu.Unlock()
	if dk, ok := k.m[id]; ok {
		return dk, nil
	}
	dk, err := k.src.OpenDataKey(k.ctx, wrapped, ref)
	if err != nil {
		return "", fmt.Errorf("opening the data key: %w", err)
	}
	if k.m == nil {
		k.m = map[string]string{}
	}
	k.m[id] = dk
	return dk, nil
}
