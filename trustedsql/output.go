package trustedsql

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ppml-project/ppml/dataformat/bigdl"
	"github.com/ppml-project/ppml/dataformat/files"
	"github.com/ppml-project/ppml/dataformat/keysource"
	"github.com/ppml-project/ppml/dataformat/parquetmod"
	"github.com/ppml-project/ppml/dataformat/stream"
	"github.com/ppml-project/ppml/internal/atomicfile"
)

type outResult struct {
	rows  int64
	files []string
}

// sink receives the plaintext result and writes it encrypted; commit makes
// it visible, abort removes every trace.
type sink struct {
	write  func(r io.Reader) error
	commit func() ([]string, error)
	abort  func()
}

func copyOptions(format string) string {
	if format == Parquet {
		return "(FORMAT parquet)"
	}
	return "(FORMAT csv, HEADER true)"
}

func writeOutput(ctx context.Context, conn *sql.Conn, priv string, opt Options, format files.Format, key keysource.DataKey) (outResult, error) {
	query := strings.TrimRight(strings.TrimSpace(opt.Query), ";")
	if opt.PlaintextInputs {
		r, err := conn.ExecContext(ctx, "COPY ("+query+") TO "+sqlString(opt.Output)+" "+copyOptions(opt.OutputFormat))
		if err != nil {
			return outResult{}, fmt.Errorf("query: %w", err)
		}
		n, _ := r.RowsAffected()
		return outResult{rows: n, files: []string{opt.Output}}, nil
	}
	s, err := newSink(opt, format, key)
	if err != nil {
		return outResult{}, err
	}
	fifo := filepath.Join(priv, "result")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		s.abort()
		return outResult{}, fmt.Errorf("creating the output pipe: %w", err)
	}
	done := make(chan error, 1)
	opened := make(chan struct{})
	go func() {
		f, err := os.Open(fifo)
		close(opened)
		if err != nil {
			done <- err
			return
		}
		err = s.write(f)
		if err != nil {
			io.Copy(io.Discard, f) // let DuckDB finish; the output is aborted anyway
		}
		f.Close()
		done <- err
	}()
	r, qerr := conn.ExecContext(ctx, "COPY ("+query+") TO "+sqlString(fifo)+" "+copyOptions(opt.OutputFormat))
	if qerr != nil {
		releaseFIFO(fifo, opened) // DuckDB may never have opened the pipe
	}
	werr := <-done
	if qerr != nil {
		s.abort()
		return outResult{}, fmt.Errorf("query: %w", qerr)
	}
	if werr != nil {
		s.abort()
		return outResult{}, fmt.Errorf("encrypting the result: %w", werr)
	}
	files, err := s.commit()
	if err != nil {
		s.abort()
		return outResult{}, err
	}
	n, _ := r.RowsAffected()
	return outResult{rows: n, files: files}, nil
}

func newSink(opt Options, format files.Format, key keysource.DataKey) (*sink, error) {
	if opt.Overwrite {
		if err := os.RemoveAll(opt.Output); err != nil {
			return nil, err
		}
	}
	if format == files.FormatPPML {
		af, err := atomicfile.Create(opt.Output, 0o600)
		if err != nil {
			return nil, fmt.Errorf("output: %w", err)
		}
		return &sink{
			write: func(r io.Reader) error {
				_, err := stream.Encrypt(af, r, key, nil)
				return err
			},
			commit: func() ([]string, error) { return []string{opt.Output}, af.Commit() },
			abort:  func() { af.Abort() },
		}, nil
	}
	// BigDL formats: a dataset directory, built beside the target and renamed.
	parent := filepath.Dir(opt.Output)
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(opt.Output)+atomicfile.TempMarker)
	if err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	name := "part-00000.csv.cbc"
	if opt.OutputFormat == Parquet {
		name = "part-00000.parquet"
	}
	s := &sink{abort: func() { os.RemoveAll(tmp) }}
	s.write = func(r io.Reader) error {
		f, err := os.OpenFile(filepath.Join(tmp, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if opt.OutputFormat == Parquet {
			// Parquet modular encryption needs random access to the plain
			// Parquet file: the result is held in memory.
			var buf bytes.Buffer
			if _, err = io.Copy(&buf, r); err == nil {
				err = parquetmod.Encrypt(f, bytes.NewReader(buf.Bytes()), key.Plaintext, parquetmod.AlgGCM)
			}
			clear(buf.Bytes())
		} else {
			_, err = bigdl.Encrypt(f, r, key.Plaintext, key.Wrapped)
		}
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = bigdl.WriteMeta(tmp, key.Wrapped)
		}
		return err
	}
	s.commit = func() ([]string, error) {
		if err := os.Rename(tmp, opt.Output); err != nil {
			return nil, fmt.Errorf("output: %w", err)
		}
		if err := atomicfile.SyncDir(parent); err != nil {
			return nil, err
		}
		return []string{filepath.Join(opt.Output, name), filepath.Join(opt.Output, ".meta")}, nil
	}
	if format != files.FormatBigDL && format != files.FormatParquet {
		s.abort()
		return nil, errors.New("unknown output format")
	}
	return s, nil
}

// releaseFIFO lets the goroutine opening the other end of fifo go on once
// DuckDB is done with the pipe (it may never have opened it): it holds the
// pipe open read-write, which on Linux never blocks and counts as both a
// reader and a writer, until that goroutine's open has returned; after the
// close the goroutine sees EOF (reading) or EPIPE (writing). A non-blocking
// open instead would miss a goroutine that has not reached its open yet, and
// leave it blocked for ever.
func releaseFIFO(fifo string, opened <-chan struct{}) {
	f, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		return // the goroutine's open then fails too, or has returned
	}
	<-opened
	f.Close()
}
