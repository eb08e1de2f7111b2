package material

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteDirFailureLeavesNothing(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "keys")
	n := 0
	writeHook = func(name string) error {
		n++
		if n == 3 {
			return errors.New("disk full")
		}
		return nil
	}
	defer func() { writeHook = nil }()
	err := WriteDir(out, map[string][]byte{"a": []byte("1"), "b": []byte("2"), "c": []byte("3"), "d": []byte("4")}, false)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(out, "c")) || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v", err)
	}
	assertEmpty(t, root)

	// Same inside an existing directory: nothing new appears.
	must(t, os.Mkdir(out, 0o755))
	n = 0
	if err := WriteDir(out, map[string][]byte{"a": []byte("1"), "b": []byte("2"), "c": []byte("3")}, false); err == nil {
		t.Fatal("no error")
	}
	assertEmpty(t, out)
}

func TestWriteDirExisting(t *testing.T) {
	out := t.TempDir()
	must(t, os.WriteFile(filepath.Join(out, "b"), []byte("old"), 0o644))
	err := WriteDir(out, map[string][]byte{"a": []byte("1"), "b": []byte("2")}, false)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), filepath.Join(out, "b")) {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "a")); !os.IsNotExist(err) {
		t.Fatal("a written despite the conflict")
	}
	must(t, WriteDir(out, map[string][]byte{"a": []byte("1"), "b": []byte("2")}, true))
	for n, want := range map[string]string{"a": "1", "b": "2"} {
		b, err := os.ReadFile(filepath.Join(out, n))
		must(t, err)
		st, _ := os.Stat(filepath.Join(out, n))
		if string(b) != want || st.Mode().Perm() != FileMode {
			t.Fatalf("%s = %q mode %v", n, b, st.Mode().Perm())
		}
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 2 {
		t.Fatalf("leftovers: %v", ents)
	}
}

func TestWriteDirBadOutput(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	must(t, os.WriteFile(file, nil, 0o600))
	files := map[string][]byte{"a": []byte("1")}

	err := WriteDir(file, files, false)
	if err == nil || !strings.Contains(err.Error(), "exists and is not a directory") {
		t.Fatalf("out is a file: %v", err)
	}
	err = WriteDir(filepath.Join(file, "keys"), files, false)
	if err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("parent is a file: %v", err)
	}
	err = WriteDir(filepath.Join(root, "missing", "keys"), files, false)
	if err == nil || !strings.Contains(err.Error(), "parent "+filepath.Join(root, "missing")+" does not exist") {
		t.Fatalf("missing parent: %v", err)
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(root, "ro")
		must(t, os.Mkdir(ro, 0o500))
		err = WriteDir(filepath.Join(ro, "keys"), files, false)
		if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), filepath.Join(ro, "keys")) {
			t.Fatalf("unwritable: %v", err)
		}
		assertEmpty(t, ro)
		must(t, os.Chmod(ro, 0o700))
	}
	// Read-only file system (works as root too).
	if st, err := os.Stat("/proc/self"); err == nil && st.IsDir() {
		err = WriteDir("/proc/self/ppml-keys", files, false)
		if err == nil || !strings.Contains(err.Error(), "/proc/self/ppml-keys") {
			t.Fatalf("unwritable /proc: %v", err)
		}
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 1 {
		t.Fatalf("leftovers in %s: %v", root, ents)
	}
	if err := WriteDir(root, map[string][]byte{"../x": nil}, false); err == nil {
		t.Fatal("path traversal accepted")
	}
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err)
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("%s not empty: %v", dir, names)
	}
}

func TestReadPassword(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "pw")
	must(t, os.WriteFile(f, []byte(testPassword+"\r\n\n"), 0o600))
	pw, err := ReadPassword(PasswordInput{File: f})
	if err != nil || string(pw) != testPassword {
		t.Fatalf("file: %q %v", pw, err)
	}

	_, err = ReadPassword(PasswordInput{File: filepath.Join(dir, "missing")})
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "password file") {
		t.Fatalf("missing file: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	must(t, os.WriteFile(empty, []byte("\n"), 0o600))
	_, err = ReadPassword(PasswordInput{File: empty})
	if !errors.Is(err, ErrEmptyPassword) || !strings.Contains(err.Error(), empty) {
		t.Fatalf("empty file: %v", err)
	}

	// Standard input that is not a terminal (a pipe), and "-".
	for _, file := range []string{"", "-"} {
		r, w, err := os.Pipe()
		must(t, err)
		go func() { w.WriteString(testPassword + "\n"); w.Close() }()
		pw, err = ReadPassword(PasswordInput{File: file, Stdin: r})
		r.Close()
		if err != nil || string(pw) != testPassword {
			t.Fatalf("pipe (file %q): %q %v", file, pw, err)
		}
	}
	r, w, err := os.Pipe()
	must(t, err)
	w.Close()
	_, err = ReadPassword(PasswordInput{Stdin: r})
	r.Close()
	if !errors.Is(err, ErrEmptyPassword) {
		t.Fatalf("empty stdin: %v", err)
	}
	if _, err := ReadPassword(PasswordInput{}); err == nil {
		t.Fatal("no source accepted")
	}
}
