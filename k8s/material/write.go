package material

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// FileMode is the mode of every written file (they all hold key material or
// manifests containing it); DirMode is the mode of a created folder.
const (
	FileMode os.FileMode = 0o600
	DirMode  os.FileMode = 0o700
)

// ErrExists is returned (wrapped) when WriteDir would replace existing files
// without overwrite.
var ErrExists = errors.New("already exists")

// writeHook is called before each file is written; tests use it to inject
// failures.
var writeHook func(name string) error

// WriteDir writes files (name → content, plain names without separators)
// into dir so that either all of them appear or none does: every file is
// written to a temporary name, fsynced and renamed, inside a staging folder
// that is moved into place only when complete.
//
// When dir does not exist it is created (mode 0700; its parent must exist)
// by renaming the staging folder. When it exists, existing files with the
// same names are an error unless overwrite is set; the new files are staged
// in a hidden sub-folder and renamed into dir at the end.
func WriteDir(dir string, files map[string][]byte, overwrite bool) (err error) {
	if dir == "" {
		return errors.New("output directory is empty")
	}
	names := make([]string, 0, len(files))
	for n := range files {
		if n == "" || n != filepath.Base(n) || n == "." || n == ".." || strings.HasPrefix(n, ".") {
			return fmt.Errorf("invalid file name %q", n)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	dir = filepath.Clean(dir)

	st, err := os.Stat(dir)
	switch {
	case err == nil && !st.IsDir():
		return fmt.Errorf("output %s exists and is not a directory", dir)
	case err == nil:
		return writeIntoExisting(dir, names, files, overwrite)
	case errors.Is(err, fs.ErrNotExist):
		return writeNewDir(dir, names, files)
	default:
		return fmt.Errorf("output directory %s: %w", dir, err)
	}
}

func writeNewDir(dir string, names []string, files map[string][]byte) error {
	parent := filepath.Dir(dir)
	pst, err := os.Stat(parent)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cannot create output directory %s: parent %s does not exist", dir, parent)
		}
		return fmt.Errorf("cannot create output directory %s: %w", dir, err)
	}
	if !pst.IsDir() {
		return fmt.Errorf("cannot create output directory %s: %s is not a directory", dir, parent)
	}
	staging, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".ppml-tmp-")
	if err != nil {
		return fmt.Errorf("cannot create output directory %s: %w", dir, unwrapPath(err))
	}
	done := false
	defer func() {
		if !done {
			_ = os.RemoveAll(staging)
		}
	}()
	if err := os.Chmod(staging, DirMode); err != nil {
		return fmt.Errorf("cannot create output directory %s: %w", dir, unwrapPath(err))
	}
	if err := writeAll(staging, dir, names, files); err != nil {
		return err
	}
	if err := syncDir(staging); err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	if err := os.Rename(staging, dir); err != nil {
		return fmt.Errorf("cannot create output directory %s: %w", dir, unwrapPath(err))
	}
	done = true
	_ = syncDir(parent)
	return nil
}

func writeIntoExisting(dir string, names []string, files map[string][]byte, overwrite bool) error {
	var existed []bool
	for _, n := range names {
		_, err := os.Lstat(filepath.Join(dir, n))
		switch {
		case err == nil && !overwrite:
			return fmt.Errorf("%s: %w (use --force to overwrite)", filepath.Join(dir, n), ErrExists)
		case err == nil:
			existed = append(existed, true)
		case errors.Is(err, fs.ErrNotExist):
			existed = append(existed, false)
		default:
			return fmt.Errorf("output directory %s: %w", dir, err)
		}
	}
	staging, err := os.MkdirTemp(dir, ".ppml-tmp-")
	if err != nil {
		return fmt.Errorf("cannot write to output directory %s: %w", dir, unwrapPath(err))
	}
	defer os.RemoveAll(staging)
	if err := writeAll(staging, dir, names, files); err != nil {
		return err
	}
	for i, n := range names {
		if err := os.Rename(filepath.Join(staging, n), filepath.Join(dir, n)); err != nil {
			// Roll back the files this call added; replaced ones cannot
			// be restored (renames inside one directory do not fail in
			// practice once the staging writes succeeded).
			for j := 0; j < i; j++ {
				if !existed[j] {
					_ = os.Remove(filepath.Join(dir, names[j]))
				}
			}
			return fmt.Errorf("write %s: %w", filepath.Join(dir, n), unwrapPath(err))
		}
	}
	return syncDir(dir)
}

// writeAll writes every file into staging; errors name the final path.
func writeAll(staging, final string, names []string, files map[string][]byte) error {
	for _, n := range names {
		if writeHook != nil {
			if err := writeHook(n); err != nil {
				return fmt.Errorf("write %s: %w", filepath.Join(final, n), err)
			}
		}
		if err := writeFileAtomic(staging, n, files[n]); err != nil {
			return fmt.Errorf("write %s: %w", filepath.Join(final, n), err)
		}
	}
	return nil
}

// writeFileAtomic writes dir/name via a temporary file, fsync and rename.
func writeFileAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp-")
	if err != nil {
		return unwrapPath(err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(FileMode); err != nil {
		return unwrapPath(err)
	}
	if _, err := f.Write(data); err != nil {
		return unwrapPath(err)
	}
	if err := f.Sync(); err != nil {
		return unwrapPath(err)
	}
	if err := f.Close(); err != nil {
		return unwrapPath(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return unwrapPath(err)
	}
	ok = true
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, unwrapPath(err))
	}
	return nil
}

// unwrapPath drops the (temporary) path from *fs.PathError and
// *os.LinkError so that messages name the final path instead.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// WriteKeysDir writes the ssl-keys files and keys.yaml (the Secret manifest,
// with metadata.namespace only when namespace is not empty) into dir.
func WriteKeysDir(dir string, k *Keys, namespace string, overwrite bool) error {
	files := k.Files()
	manifest, err := ManifestYAML(k.Secret(namespace))
	if err != nil {
		return err
	}
	files[KeysManifest] = manifest
	return WriteDir(dir, files, overwrite)
}

// WritePasswordDir writes key.txt, output.bin, password.yaml (ssl-password)
// and spark-secret.yaml (spark-secret, which holds the password itself) into
// dir.
func WritePasswordDir(dir string, p *PasswordFiles, password []byte, namespace string, overwrite bool) error {
	files := p.Files()
	pm, err := ManifestYAML(p.Secret(namespace))
	if err != nil {
		return err
	}
	sm, err := ManifestYAML(SparkSecretFor(password, namespace))
	if err != nil {
		return err
	}
	files[PasswordManifest] = pm
	files[SparkSecretManifest] = sm
	return WriteDir(dir, files, overwrite)
}
