// Package trustedsql runs SQL inside the enclave over encrypted inputs with an
// embedded DuckDB, and writes the result encrypted.
//
// Run proceeds in a fixed order so that a refused attestation or a wrong key
// means no input byte is ever decrypted:
//
//  1. inspect the inputs: only headers (ppml, BigDL .cbc) or the dataset's
//     .meta (parquet-modular) are read;
//  2. obtain every data key, inputs' and the output's, from Options.Keys (for
//     an attested workload an agent.ReleaseSource whose session has attested);
//  3. decrypt each input into a DuckDB table without plaintext files: CSV is
//     streamed through a named pipe (FIFO) in a private 0700 directory, so
//     the plaintext only ever exists in process memory and the kernel's pipe
//     buffer; Parquet (which DuckDB must read with random access) is
//     decrypted into an anonymous memory file (memfd_create) that DuckDB
//     reads through /proc/self/fd; it is held whole in memory;
//  4. lock DuckDB down (no file access except the private pipe directory, no
//     configuration changes), so the query cannot read other files or write
//     plaintext anywhere;
//  5. run the query as COPY (query) TO <pipe> and encrypt what comes out of
//     the pipe in the format of the first input, writing the output
//     atomically; nothing is written under the output name unless every
//     input decrypted and authenticated completely and the query succeeded.
//
// Why pipes: DuckDB reads CSV sequentially, so a FIFO gives a bounded-memory
// stream straight from the decryptor into DuckDB's CSV reader. DuckDB opens a
// CSV file twice when it auto-detects the dialect (sniffer, then scan), which
// a pipe cannot serve, so the dialect and column types are sniffed from an
// in-memory sample of the first MiB (a memfd) and the pipe is read with
// auto_detect=false and the sniffed options.
//
// Memory: tables live in DuckDB's buffer pool, limited by
// Options.MemoryLimit; beyond it DuckDB spills to Options.TempDir (which
// must be the enclave's encrypted mount; DuckDB's temp_file_encryption is
// also switched on). Without TempDir spilling is disabled and a working set
// larger than the limit fails with DuckDB's out-of-memory error.
package trustedsql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"golang.org/x/sys/unix"

	"github.com/ppml-project/ppml/dataformat/bigdl"
	"github.com/ppml-project/ppml/dataformat/files"
	"github.com/ppml-project/ppml/dataformat/keysource"
	"github.com/ppml-project/ppml/dataformat/parquetmod"
	"github.com/ppml-project/ppml/dataformat/stream"
)

// Input is one encrypted input file, queried as table Name.
type Input struct {
	Name string // SQL table name: letters, digits, underscore
	Path string // a ppml file, a BigDL .cbc (its .meta beside it) or a parquet-modular .parquet (its .meta beside it)
}

// Output formats.
const (
	CSV     = "csv"
	Parquet = "parquet"
)

// Options for Run.
type Options struct {
	Inputs       []Input
	Query        string // one SELECT (or WITH ... SELECT) statement
	Output       string // ppml format: the output file; BigDL formats: a new directory (part-00000.<ext>[.cbc] + .meta)
	OutputFormat string // CSV (default, with header) or Parquet
	Keys         keysource.Source
	// TempDir is DuckDB's spill directory. In an enclave it must be on the
	// encrypted mount. Empty: no spilling.
	TempDir string
	// MemoryLimit is DuckDB's memory_limit, e.g. "4GB" (default DuckDB's, 80% of RAM).
	MemoryLimit string
	// Threads is DuckDB's thread count (0: DuckDB's default, all cores).
	Threads int
	// Overwrite replaces an existing output.
	Overwrite bool
	// PlaintextInputs reads the inputs as plaintext CSV/Parquet files and
	// writes the output as plaintext, through the same DuckDB path. Only
	// for benchmarks (the baseline); never for real data.
	PlaintextInputs bool
}

// Result describes a successful run.
type Result struct {
	Rows       int64 // rows in the result
	InputBytes int64 // plaintext bytes loaded
	Format     files.Format
	Outputs    []string // files written
}

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

type input struct {
	Input
	format  files.Format
	parquet bool // the plaintext is Parquet
	wrapped string
	ref     keysource.KeyRef
	key     string
}

// ErrInput marks errors about an input's integrity (authentication failed,
// truncated, wrong key).
var ErrInput = errors.New("input rejected")

// Run executes the query; see the package documentation.
func Run(ctx context.Context, opt Options) (Result, error) {
	if opt.OutputFormat == "" {
		opt.OutputFormat = CSV
	}
	if opt.OutputFormat != CSV && opt.OutputFormat != Parquet {
		return Result{}, fmt.Errorf("output format %q: want csv or parquet", opt.OutputFormat)
	}
	if len(opt.Inputs) == 0 {
		return Result{}, errors.New("no inputs: give at least one NAME=PATH")
	}
	if strings.TrimSpace(opt.Query) == "" {
		return Result{}, errors.New("no query")
	}
	if opt.Output == "" {
		return Result{}, errors.New("no output path")
	}
	if !opt.PlaintextInputs && opt.Keys == nil {
		return Result{}, errors.New("no key source")
	}
	if _, err := os.Lstat(opt.Output); err == nil && !opt.Overwrite {
		return Result{}, fmt.Errorf("output %s exists (use overwrite to replace it)", opt.Output)
	}

	// (1) Inspect: headers only.
	ins := make([]*input, len(opt.Inputs))
	seen := map[string]bool{}
	for i, in := range opt.Inputs {
		if !nameRE.MatchString(in.Name) {
			return Result{}, fmt.Errorf("input name %q: use letters, digits and underscores, not starting with a digit", in.Name)
		}
		if seen[strings.ToLower(in.Name)] {
			return Result{}, fmt.Errorf("input name %q given twice", in.Name)
		}
		seen[strings.ToLower(in.Name)] = true
		x, err := inspect(in, opt.PlaintextInputs)
		if err != nil {
			return Result{}, err
		}
		ins[i] = x
	}
	outFormat := ins[0].format

	// (2) Every key before any decryption.
	var outKey keysource.DataKey
	if !opt.PlaintextInputs {
		opened := map[string]string{}
		for _, x := range ins {
			if k, ok := opened[x.wrapped]; ok {
				x.key = k
				continue
			}
			k, err := opt.Keys.OpenDataKey(ctx, x.wrapped, x.ref)
			if err != nil {
				return Result{}, fmt.Errorf("input %s: obtaining its data key: %w", x.Name, err)
			}
			opened[x.wrapped], x.key = k, k
		}
		var err error
		outKey, err = opt.Keys.NewDataKey(ctx, keysource.Request{BigDL: outFormat != files.FormatPPML})
		if err != nil {
			return Result{}, fmt.Errorf("creating the output's data key: %w", err)
		}
	}

	// (3) Private directory for the pipes (never holds file data).
	priv, err := os.MkdirTemp("", "ppml-sql-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(priv)

	db, conn, err := openDuckDB(ctx, opt)
	if err != nil {
		return Result{}, err
	}
	defer db.Close()
	defer conn.Close()

	var res Result
	res.Format = outFormat
	for _, x := range ins {
		n, err := load(ctx, conn, priv, x, opt.PlaintextInputs)
		if err != nil {
			return Result{}, err
		}
		res.InputBytes += n
	}

	// (4) Lock down: the query may touch nothing but the pipe directory.
	for _, s := range []string{
		"SET allowed_directories=[" + sqlString(priv+"/") + "]",
		"SET enable_external_access=false",
		"SET lock_configuration=true",
	} {
		if opt.PlaintextInputs && s != "SET lock_configuration=true" {
			continue
		}
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return Result{}, fmt.Errorf("locking DuckDB down (%s): %w", s, err)
		}
	}

	// (5) Query and encrypted output.
	out, err := writeOutput(ctx, conn, priv, opt, outFormat, outKey)
	if err != nil {
		return Result{}, err
	}
	res.Rows, res.Outputs = out.rows, out.files
	return res, nil
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func openDuckDB(ctx context.Context, opt Options) (*sql.DB, *sql.Conn, error) {
	c, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, nil, fmt.Errorf("starting DuckDB: %w", err)
	}
	db := sql.OpenDB(c)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("starting DuckDB: %w", err)
	}
	set := []string{
		"SET autoinstall_known_extensions=false",
		"SET autoload_known_extensions=false",
		"SET preserve_insertion_order=true",
	}
	if opt.TempDir != "" {
		if err := os.MkdirAll(opt.TempDir, 0o700); err != nil {
			conn.Close()
			db.Close()
			return nil, nil, fmt.Errorf("temp dir: %w", err)
		}
		set = append(set, "SET temp_directory="+sqlString(opt.TempDir), "SET temp_file_encryption=true")
	} else {
		set = append(set, "SET temp_directory=''")
	}
	if opt.MemoryLimit != "" {
		set = append(set, "SET memory_limit="+sqlString(opt.MemoryLimit))
	}
	if opt.Threads > 0 {
		set = append(set, fmt.Sprintf("SET threads=%d", opt.Threads))
	}
	for _, s := range set {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			conn.Close()
			db.Close()
			return nil, nil, fmt.Errorf("configuring DuckDB (%s): %w", s, err)
		}
	}
	return db, conn, nil
}

func inspect(in Input, plaintext bool) (*input, error) {
	x := &input{Input: in}
	if _, err := os.Stat(in.Path); err != nil {
		return nil, fmt.Errorf("input %s: %w", in.Name, err)
	}
	lower := strings.ToLower(in.Path)
	if plaintext {
		x.format = files.FormatPPML
		x.parquet = strings.HasSuffix(lower, ".parquet")
		return x, nil
	}
	f, err := files.Detect(in.Path)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", in.Name, err)
	}
	x.format = f
	switch f {
	case files.FormatPPML:
		x.parquet = strings.HasSuffix(strings.TrimSuffix(lower, files.PPMLExt), ".parquet")
		fh, err := os.Open(in.Path)
		if err != nil {
			return nil, err
		}
		h, err := stream.ReadHeader(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("input %s: %w: %w", in.Name, ErrInput, err)
		}
		x.wrapped, x.ref = h.WrappedKey, h.Key
	case files.FormatBigDL:
		x.parquet = strings.HasSuffix(strings.TrimSuffix(lower, ".cbc"), ".parquet")
		fh, err := os.Open(in.Path)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, bigdl.HeaderSize)
		_, err = io.ReadFull(fh, buf)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("input %s: %w: %w", in.Name, ErrInput, err)
		}
		h, err := bigdl.ParseHeader(buf)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w: %w", in.Name, ErrInput, err)
		}
		x.wrapped = h.EncryptedDataKey
	case files.FormatParquet:
		x.parquet = true
		w, err := bigdl.ReadMeta(filepath.Dir(in.Path))
		if err != nil {
			return nil, fmt.Errorf("input %s: parquet-modular file needs the dataset's .meta: %w", in.Name, err)
		}
		x.wrapped = w
	default:
		return nil, fmt.Errorf("input %s: %s is not encrypted in a known format (ppml, BigDL .cbc, parquet-modular); plaintext inputs are refused", in.Name, in.Path)
	}
	return x, nil
}

// decrypt writes x's authenticated plaintext to w.
func decrypt(w io.Writer, x *input, plaintext bool) (int64, error) {
	f, err := os.Open(x.Path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if plaintext {
		return io.Copy(w, f)
	}
	var n int64
	switch x.format {
	case files.FormatPPML:
		_, n, err = stream.Decrypt(w, f, func(h *stream.Header) (string, error) {
			if h.WrappedKey != x.wrapped {
				return "", errors.New("the header's data key changed since it was inspected")
			}
			return x.key, nil
		}, nil)
	case files.FormatBigDL:
		st, serr := f.Stat()
		if serr != nil {
			return 0, serr
		}
		n, err = bigdl.Decrypt(w, f, st.Size(), func(wrapped string) (string, error) {
			if wrapped != x.wrapped {
				return "", errors.New("the header's data key changed since it was inspected")
			}
			return x.key, nil
		})
	case files.FormatParquet:
		cw := &countWriter{w: w}
		err = parquetmod.Decrypt(cw, f, x.key)
		n = cw.n
	}
	if err != nil {
		return n, fmt.Errorf("input %s: %w: %w", x.Name, ErrInput, err)
	}
	return n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// memFile is an anonymous in-memory file DuckDB can open by path.
type memFile struct {
	f *os.File
}

func newMemFile(name string) (*memFile, error) {
	fd, err := unix.MemfdCreate(name, 0)
	if err != nil {
		return nil, fmt.Errorf("memfd_create (in-memory file for DuckDB): %w", err)
	}
	return &memFile{f: os.NewFile(uintptr(fd), name)}, nil
}

func (m *memFile) path() string { return fmt.Sprintf("/proc/self/fd/%d", m.f.Fd()) }
func (m *memFile) Close() error { return m.f.Close() }

const sampleSize = 1 << 20

var noQuote = regexp.MustCompile(`quote='', escape=''`)

// load decrypts x into table x.Name and returns the plaintext size.
func load(ctx context.Context, conn *sql.Conn, priv string, x *input, plaintext bool) (int64, error) {
	table := quoteIdent(x.Name)
	if plaintext {
		src := "read_csv(" + sqlString(x.Path) + ", header=true)"
		if x.parquet {
			src = "read_parquet(" + sqlString(x.Path) + ")"
		}
		st, _ := os.Stat(x.Path)
		if _, err := conn.ExecContext(ctx, "CREATE TABLE "+table+" AS SELECT * FROM "+src); err != nil {
			return 0, fmt.Errorf("input %s: loading: %w", x.Name, err)
		}
		return st.Size(), nil
	}
	if x.parquet {
		// Parquet needs random access: an in-memory file, held whole.
		m, err := newMemFile(x.Name)
		if err != nil {
			return 0, err
		}
		defer m.Close()
		n, err := decrypt(m.f, x, false)
		if err != nil {
			return 0, err
		}
		if _, err := conn.ExecContext(ctx, "CREATE TABLE "+table+" AS SELECT * FROM read_parquet("+sqlString(m.path())+")"); err != nil {
			return 0, fmt.Errorf("input %s: loading the decrypted Parquet: %w", x.Name, err)
		}
		return n, nil
	}

	// CSV: decryptor → io.Pipe → (sample for sniffing) → FIFO → DuckDB.
	pr, pw := io.Pipe()
	decErr := make(chan error, 1)
	var total int64
	go func() {
		n, err := decrypt(pw, x, false)
		total = n
		pw.CloseWithError(err)
		decErr <- err
	}()
	defer pr.Close()
	waitDec := func() error { pr.CloseWithError(errors.New("load aborted")); return <-decErr }

	sample := make([]byte, sampleSize)
	k, rerr := io.ReadFull(pr, sample)
	sample = sample[:k]
	if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
		waitDec()
		return 0, rerr
	}
	sniff := sample
	if rerr == nil { // more follows: sniff on whole lines only
		if i := strings.LastIndexByte(string(sample), '\n'); i >= 0 {
			sniff = sample[:i+1]
		}
	}
	m, err := newMemFile(x.Name + "-sample")
	if err != nil {
		waitDec()
		return 0, err
	}
	if _, err := m.f.Write(sniff); err != nil {
		m.Close()
		waitDec()
		return 0, err
	}
	var prompt string
	err = conn.QueryRowContext(ctx, "SELECT Prompt FROM sniff_csv("+sqlString(m.path())+", header=true)").Scan(&prompt)
	mpath := m.path()
	m.Close()
	if err != nil {
		if derr := waitDec(); derr != nil {
			return 0, derr
		}
		return 0, fmt.Errorf("input %s: detecting the CSV dialect: %w", x.Name, err)
	}
	fifo := filepath.Join(priv, x.Name+".csv")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		waitDec()
		return 0, fmt.Errorf("creating the input pipe: %w", err)
	}
	prompt = strings.TrimSuffix(strings.TrimSpace(prompt), ";")
	prompt = strings.Replace(prompt, sqlString(mpath), sqlString(fifo), 1)
	prompt = noQuote.ReplaceAllString(prompt, `quote='"', escape='"'`)
	if !strings.HasPrefix(prompt, "FROM read_csv(") || !strings.Contains(prompt, sqlString(fifo)) {
		waitDec()
		return 0, fmt.Errorf("input %s: unexpected CSV sniffer result %q", x.Name, prompt)
	}

	fifoErr := make(chan error, 1)
	opened := make(chan struct{})
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		close(opened)
		if err != nil {
			fifoErr <- err
			return
		}
		_, err = f.Write(sample)
		if err == nil {
			_, err = io.Copy(f, pr)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		fifoErr <- err
	}()
	_, qerr := conn.ExecContext(ctx, "CREATE TABLE "+table+" AS SELECT * "+prompt)
	if qerr != nil {
		pr.CloseWithError(errors.New("load aborted")) // stop feeding the pipe
		releaseFIFO(fifo, opened)                     // DuckDB may never have opened it
	}
	werr := <-fifoErr
	derr := waitDec()
	if derr != nil { // integrity first: a truncated or tampered input explains any load error
		return 0, derr
	}
	if qerr != nil {
		return 0, fmt.Errorf("input %s: loading the CSV: %w", x.Name, qerr)
	}
	if werr != nil {
		return 0, fmt.Errorf("input %s: feeding DuckDB: %w", x.Name, werr)
	}
	return total, nil
}

// ParseInputs reads --input NAME=PATH specs.
func ParseInputs(specs []string) ([]Input, error) {
	var in []Input
	for _, s := range specs {
		name, path, ok := strings.Cut(s, "=")
		if !ok || name == "" || path == "" {
			return nil, fmt.Errorf("--input %q: want NAME=PATH", s)
		}
		in = append(in, Input{Name: name, Path: path})
	}
	return in, nil
}
