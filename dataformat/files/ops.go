package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ppml-project/ppml/dataformat/bigdl"
	"github.com/ppml-project/ppml/dataformat/keysource"
	"github.com/ppml-project/ppml/dataformat/parquetmod"
	"github.com/ppml-project/ppml/dataformat/stream"
)

func hiddenPath(rel string) bool {
	for _, c := range strings.Split(filepath.ToSlash(rel), "/") {
		if hadoopHidden(c) {
			return true
		}
	}
	return false
}

func encExt(f Format) string {
	switch f {
	case FormatPPML:
		return PPMLExt
	case FormatBigDL:
		return bigdl.Ext
	}
	return ""
}

// Encrypt encrypts in (a file or a directory tree) to out in opt.Format
// (default ppml). For a file, out is the output file (default in + ".ppml"
// or ".cbc"; an existing directory means "inside it"); for a directory, out
// is the output directory. See the package comment for naming.
func Encrypt(ctx context.Context, in, out string, opt Options) (Result, error) {
	if opt.Format == FormatAuto {
		opt.Format = FormatPPML
	}
	if opt.Format == FormatNativeAESCBC {
		return Result{}, errors.New("bigdl-nativeaescbc has no integrity protection: it is readable for migration, never written; use bigdl or ppml")
	}
	if opt.Keys == nil {
		return Result{}, errors.New("no key source: give a primary key or a KMS to encrypt with")
	}
	isDir, files, sizes, err := walk(in)
	if err != nil {
		return Result{}, err
	}
	var p plan
	metaDirs := map[string]bool{}
	if !isDir {
		if out == "" {
			if opt.Format == FormatParquet {
				return Result{}, errors.New("--out is required for parquet-modular (the output keeps the .parquet name)")
			}
			out = in + encExt(opt.Format)
		} else if st, err := os.Stat(out); err == nil && st.IsDir() {
			out = filepath.Join(out, filepath.Base(in)+encExt(opt.Format))
		}
		if opt.Format == FormatBigDL && !strings.HasSuffix(out, bigdl.Ext) {
			return Result{}, fmt.Errorf("output %s does not end in .cbc: Spark with BigDL decrypts only files named *.cbc; name it %s.cbc", out, out)
		}
		p.jobs = append(p.jobs, job{in: in, out: out, size: sizes[0]})
	} else {
		if out == "" {
			return Result{}, errors.New("--out is required when the input is a directory")
		}
		if err := checkOutside(in, out); err != nil {
			return Result{}, err
		}
		for i, rel := range files {
			if opt.Format != FormatPPML && hiddenPath(rel) {
				p.skipped = append(p.skipped, filepath.Join(in, rel))
				continue
			}
			p.jobs = append(p.jobs, job{in: filepath.Join(in, rel), out: filepath.Join(out, rel+encExt(opt.Format)), size: sizes[i]})
		}
	}
	if opt.Format != FormatPPML {
		for _, j := range p.jobs {
			metaDirs[filepath.Dir(j.out)] = true
		}
		if isDir && len(p.jobs) == 0 {
			metaDirs[out] = true
		}
		for d := range metaDirs {
			p.metaDirs = append(p.metaDirs, d)
			if _, err := os.Stat(filepath.Join(d, bigdl.MetaName)); err == nil && !opt.Overwrite {
				return Result{}, fmt.Errorf("%s already holds a .meta file of another dataset (each encryption run uses a new data key, and a directory holds one dataset); encrypt into an empty directory, or use --force to replace it", d)
			}
		}
	}
	if err := opt.checkTargets(&p); err != nil {
		return Result{}, err
	}
	req := keysource.Request{BigDL: opt.Format != FormatPPML}
	if opt.Format == FormatParquet {
		req.Bytes = 32
	}
	key, err := opt.Keys.NewDataKey(ctx, req)
	if err != nil {
		return Result{}, fmt.Errorf("creating a data key: %w", err)
	}
	if opt.Format != FormatPPML && len(key.Wrapped) > bigdl.MaxEncryptedDataKeyLen {
		return Result{}, fmt.Errorf("the key source's wrapped data key is %d bytes; BigDL formats hold at most %d", len(key.Wrapped), bigdl.MaxEncryptedDataKeyLen)
	}
	do := func(ctx context.Context, j job, progress func(int64)) error {
		f, err := os.Open(j.in)
		if err != nil {
			return err
		}
		defer f.Close()
		src := &countingReader{r: f, ctx: ctx, progress: progress}
		switch opt.Format {
		case FormatPPML:
			return writeAtomic(j.out, func(w io.Writer) error {
				_, err := stream.Encrypt(w, src, key, &stream.Options{ChunkSize: opt.ChunkSize})
				return err
			})
		case FormatBigDL:
			return writeAtomic(j.out, func(w io.Writer) error {
				_, err := bigdl.Encrypt(w, src, key.Plaintext, key.Wrapped)
				return err
			})
		case FormatParquet:
			return writeAtomic(j.out, func(w io.Writer) error {
				err := parquetmod.Encrypt(w, f, key.Plaintext, opt.ParquetAlgorithm)
				progress(j.size)
				return err
			})
		}
		return fmt.Errorf("unknown format %q", opt.Format)
	}
	res, err := opt.run(ctx, &p, do)
	if err != nil {
		return res, err
	}
	for _, d := range p.metaDirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return res, err
		}
		if err := bigdl.WriteMeta(d, key.Wrapped); err != nil {
			return res, fmt.Errorf("writing %s: %w", filepath.Join(d, bigdl.MetaName), err)
		}
	}
	return res, nil
}

// Detect returns the encrypted format of the file at path from its content,
// or FormatAuto if it is none of them.
func Detect(path string) (Format, error) {
	f, err := os.Open(path)
	if err != nil {
		return FormatAuto, err
	}
	defer f.Close()
	buf := make([]byte, bigdl.HeaderSize)
	n, _ := io.ReadFull(f, buf)
	buf = buf[:n]
	switch {
	case stream.IsEncrypted(buf):
		return FormatPPML, nil
	case bigdl.LooksLikeHeader(buf):
		return FormatBigDL, nil
	case len(buf) >= 4 && string(buf[:4]) == "PARE":
		st, err := f.Stat()
		if err != nil {
			return FormatAuto, err
		}
		var tail [4]byte
		if st.Size() >= 12 {
			if _, err := f.ReadAt(tail[:], st.Size()-4); err == nil && string(tail[:]) == "PARE" {
				return FormatParquet, nil
			}
		}
	}
	return FormatAuto, nil
}

// Decrypt decrypts in (a file or a directory tree) to out. With
// opt.Format == FormatAuto the format of each file is detected from its
// content. For a file, out defaults to in without ".ppml"/".cbc".
// Every output file is written atomically and only after (bigdl) or while
// (ppml, parquet) its integrity is verified; on any error the failing
// output is removed and no further files are started.
func Decrypt(ctx context.Context, in, out string, opt Options) (Result, error) {
	isDir, files, sizes, err := walk(in)
	if err != nil {
		return Result{}, err
	}
	var p plan
	formats := map[string]Format{}
	outName := func(rel string, f Format) string {
		switch f {
		case FormatPPML:
			if s, ok := strings.CutSuffix(rel, PPMLExt); ok && filepath.Base(s) != "" && !strings.HasSuffix(s, string(filepath.Separator)) {
				return s
			}
		case FormatBigDL, FormatNativeAESCBC:
			if s, ok := bigdl.DecryptedName(rel); ok {
				return s
			}
		}
		return rel
	}
	native := opt.Format == FormatNativeAESCBC
	if native && opt.NativeKey == "" {
		return Result{}, errors.New("bigdl-nativeaescbc files are decrypted with the data-key string itself (BigDL plain-text mode: the primary key); give it")
	}
	for i, rel := range files {
		path := in
		if isDir {
			path = filepath.Join(in, rel)
			if filepath.Base(rel) == bigdl.MetaName {
				continue
			}
		}
		f, err := Detect(path)
		if err != nil {
			return Result{}, err
		}
		if f == FormatAuto && (opt.Format == FormatAuto || opt.Format == FormatBigDL) && bigdl.IsEmptyPart(path, sizes[i]) {
			f = FormatBigDL // an empty Spark partition: no header, empty plaintext
		}
		if native && f == FormatAuto {
			if isDir && hiddenPath(rel) {
				p.skipped = append(p.skipped, path)
				continue
			}
			f = FormatNativeAESCBC // no header to detect: taken on the caller's word
		}
		if f == FormatAuto || (opt.Format != FormatAuto && f != opt.Format) {
			if isDir && hiddenPath(rel) {
				p.skipped = append(p.skipped, path)
				continue
			}
			what := "not encrypted in any supported format (no ppml, BigDL or encrypted-Parquet header)"
			if f != FormatAuto {
				what = fmt.Sprintf("in %s format, not %s", f, opt.Format)
			}
			return Result{}, fmt.Errorf("%s is %s", path, what)
		}
		o := out
		if isDir {
			if out == "" {
				return Result{}, errors.New("--out is required when the input is a directory")
			}
			o = filepath.Join(out, outName(rel, f))
		} else {
			if o == "" {
				o = outName(in, f)
				if o == in {
					return Result{}, fmt.Errorf("cannot derive an output name from %s (no .ppml or .cbc extension); give --out", in)
				}
			} else if st, err := os.Stat(o); err == nil && st.IsDir() {
				o = filepath.Join(o, outName(filepath.Base(in), f))
			}
		}
		formats[path] = f
		p.jobs = append(p.jobs, job{in: path, out: o, size: sizes[i]})
	}
	if isDir {
		if err := checkOutside(in, out); err != nil {
			return Result{}, err
		}
	}
	if err := opt.checkTargets(&p); err != nil {
		return Result{}, err
	}
	keys := &keyCache{src: opt.Keys, ctx: ctx}
	metas := &metaCache{m: map[string]metaEntry{}}
	do := func(ctx context.Context, j job, progress func(int64)) error {
		f, err := os.Open(j.in)
		if err != nil {
			return err
		}
		defer f.Close()
		switch formats[j.in] {
		case FormatPPML:
			src := &countingReader{r: f, ctx: ctx, progress: progress}
			return writeAtomic(j.out, func(w io.Writer) error {
				_, _, err := stream.Decrypt(w, src, func(h *stream.Header) (string, error) {
					return keys.open(h.WrappedKey, h.Key)
				}, nil)
				return err
			})
		case FormatBigDL:
			if bigdl.IsEmptyPart(j.in, j.size) {
				return writeAtomic(j.out, func(io.Writer) error { return nil })
			}
			meta, err := metas.get(filepath.Dir(j.in))
			if err != nil {
				return err
			}
			r, err := bigdl.Open(f, j.size, func(edk string) (string, error) {
				if meta != "" && edk != meta {
					return "", fmt.Errorf("the file header's encryptedDataKey %q differs from the one in %s (%q): the file or .meta was modified or comes from another dataset", trunc(edk), filepath.Join(filepath.Dir(j.in), bigdl.MetaName), trunc(meta))
				}
				return keys.open(edk, keysource.KeyRef{})
			})
			if err != nil {
				return err
			}
			return writeAtomic(j.out, func(w io.Writer) error {
				_, err := io.CopyBuffer(w, &countingReader{r: r, ctx: ctx, progress: progress}, make([]byte, 1<<20))
				if err == nil {
					progress(bigdl.Overhead)
				}
				return err
			})
		case FormatNativeAESCBC:
			return writeAtomic(j.out, func(w io.Writer) error {
				_, err := bigdl.DecryptNative(w, &countingReader{r: f, ctx: ctx, progress: progress}, opt.NativeKey)
				return err
			})
		case FormatParquet:
			meta, err := metas.get(filepath.Dir(j.in))
			if err != nil {
				return err
			}
			if meta == "" {
				return fmt.Errorf("no %s next to this Parquet file: BigDL keeps the encryptedDataKey of Parquet datasets only there", bigdl.MetaName)
			}
			dk, err := keys.open(meta, keysource.KeyRef{})
			if err != nil {
				return err
			}
			return writeAtomic(j.out, func(w io.Writer) error {
				err := parquetmod.Decrypt(w, f, dk)
				progress(j.size)
				return err
			})
		}
		return errors.New("unknown format")
	}
	return opt.run(ctx, &p, do)
}

type metaEntry struct {
	edk string
	err error
}

// metaCache reads each directory's .meta once; a missing .meta gives "".
type metaCache struct {
	mu sync.Mutex
	m  map[string]metaEntry
}

func (c *metaCache) get(dir string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[dir]; ok {
		return e.edk, e.err
	}
	edk, err := bigdl.ReadMeta(dir)
	if errors.Is(err, os.ErrNotExist) {
		edk, err = "", nil
	}
	c.m[dir] = metaEntry{edk, err}
	return edk, err
}

func trunc(s string) string {
	if len(s) > 48 {
		return s[:48] + "..."
	}
	return s
}
