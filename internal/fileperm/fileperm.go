// Package fileperm keeps a directory private: files 0600, directories 0700.
package fileperm

import (
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// Tighten walks dir and removes every group and other permission bit
// (files become at most 0600, directories at most 0700), logging each path
// it changes with its old mode. Symbolic links are not followed.
func Tighten(dir string, log *slog.Logger) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode().Perm()
		want := mode &^ 0o077
		if d.IsDir() {
			want |= 0o700
		}
		if want == mode {
			return nil
		}
		if err := os.Chmod(path, want); err != nil {
			return err
		}
		log.Warn("tightened permissions under the data directory (group and others had access)", "path", path, "was", mode.String(), "now", want.String())
		return nil
	})
}
