// Package atomicfile writes files atomically: data goes to a temporary file
// in the target directory, which is fsynced and renamed over the target on
// Commit, after which the directory is fsynced. An interrupted or aborted
// write leaves at most a temporary file whose name starts with "." and
// contains ".ppml-tmp-", never a file under the target name.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TempMarker is part of every temporary file name.
const TempMarker = ".ppml-tmp-"

// File is a file being written atomically. It is not safe for concurrent use.
type File struct {
	*os.File
	target string
	done   bool
}

// Create starts writing path. perm is applied to the final file.
func Create(path string, perm os.FileMode) (*File, error) {
	dir, base := filepath.Split(path)
	if base == "" {
		return nil, fmt.Errorf("atomicfile: %q names a directory, not a file", path)
	}
	if dir == "" {
		dir = "."
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	tmp := filepath.Join(dir, "."+base+TempMarker+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return nil, fmt.Errorf("creating temporary output file: %w", err)
	}
	return &File{File: f, target: path}, nil
}

// IsTemp reports whether name (a base name) is a temporary file of this package.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, TempMarker)
}

// Target returns the final path.
func (f *File) Target() string { return f.target }

// Commit syncs the data, renames the temporary file to the target and syncs
// the directory. On error the temporary file is removed.
func (f *File) Commit() error {
	if f.done {
		return errors.New("atomicfile: already committed or aborted")
	}
	f.done = true
	tmp := f.File.Name()
	if err := f.File.Sync(); err != nil {
		f.File.Close()
		os.Remove(tmp)
		return fmt.Errorf("syncing %s: %w", f.target, err)
	}
	if err := f.File.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("closing %s: %w", f.target, err)
	}
	if err := os.Rename(tmp, f.target); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("renaming output into place: %w", err)
	}
	return SyncDir(filepath.Dir(f.target))
}

// Abort discards the temporary file. It is a no-op after Commit or Abort, so
// it can be deferred.
func (f *File) Abort() error {
	if f.done {
		return nil
	}
	f.done = true
	f.File.Close()
	return os.Remove(f.File.Name())
}

// SyncDir fsyncs a directory so that renames in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// WriteFile writes data to path atomically.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}
