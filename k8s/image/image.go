// Package image assembles the ppml KMS/AS container image without a
// container engine, with go-containerregistry: one layer holding the
// static ppml binary, the CA bundle and a passwd/group naming the
// non-root user 65532, no shell and nothing else. Every timestamp is fixed
// (Created, default the Unix epoch), so the same binary and CA bundle give
// the same image digest; BuildBinary builds the binary reproducibly
// (CGO_ENABLED=0, -trimpath, -buildvcs=false).
package image

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ppml-project/ppml/internal/atomicfile"
)

// Paths and identity inside the image.
const (
	BinaryPath   = "/usr/local/bin/ppml"
	CABundlePath = "/etc/ssl/certs/ca-certificates.crt"
	DataDir      = "/var/lib/ppml"
	UID          = 65532 // "nonroot" as in distroless
	User         = "65532:65532"
	// DefaultCABundle is read from the build host (Debian's path).
	DefaultCABundle = "/etc/ssl/certs/ca-certificates.crt"
)

// Options of Build.
type Options struct {
	// Binary is a static ppml binary for linux (see BuildBinary).
	Binary string
	// CABundle is copied to /etc/ssl/certs/ca-certificates.crt (trust
	// roots for the PCCS / Intel PCS and PostgreSQL); DefaultCABundle when
	// empty.
	CABundle string
	// Created is the image and file time; the Unix epoch when zero.
	Created time.Time
	// Source is recorded as the org.opencontainers.image.source label.
	Source string
}

// Build assembles the image.
func Build(o Options) (v1.Image, error) {
	if o.Binary == "" {
		return nil, errors.New("image: no ppml binary (build one with BuildBinary or give --binary)")
	}
	if err := CheckStatic(o.Binary); err != nil {
		return nil, err
	}
	if o.CABundle == "" {
		o.CABundle = DefaultCABundle
	}
	if o.Created.IsZero() {
		o.Created = time.Unix(0, 0).UTC()
	}
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	ca, err := os.ReadFile(o.CABundle)
	if err != nil {
		return nil, fmt.Errorf("image: CA bundle: %w (install ca-certificates or give --ca-bundle)", err)
	}
	layerTar, err := rootfs(o.Created, bin, ca)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer,
		History: v1.History{Created: v1.Time{Time: o.Created}, CreatedBy: "ppml k8s image build", Comment: "static ppml binary, CA bundle, passwd"}})
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: o.Created}
	labels := map[string]string{"org.opencontainers.image.title": "ppml", "org.opencontainers.image.description": "ppml KMS and Attestation Service"}
	if o.Source != "" {
		labels["org.opencontainers.image.source"] = o.Source
	}
	cf.Config = v1.Config{
		User:         User,
		Entrypoint:   []string{BinaryPath},
		Cmd:          []string{"serve", "--addr=0.0.0.0:9000", "--data-dir=" + DataDir},
		WorkingDir:   DataDir,
		Env:          []string{"SSL_CERT_FILE=" + CABundlePath},
		ExposedPorts: map[string]struct{}{"9000/tcp": {}, "9876/tcp": {}, "9875/tcp": {}},
		Labels:       labels,
		StopSignal:   "SIGTERM",
	}
	if arch, err := binaryArch(o.Binary); err == nil {
		cf.Architecture = arch
	}
	return mutate.ConfigFile(img, cf)
}

// rootfs is the single layer: directories, passwd/group, the CA bundle and
// the binary, in a fixed order with fixed times and owners.
func rootfs(t time.Time, bin, ca []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(p string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: t, Format: tar.FormatPAX})
	}
	file := func(p string, mode int64, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Size: int64(len(b)), ModTime: t, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	steps := []func() error{
		func() error { return dir("etc", 0o755, 0) },
		func() error {
			return file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"))
		},
		func() error { return file("etc/group", 0o644, []byte("root:x:0:\nnonroot:x:65532:\n")) },
		func() error { return dir("etc/ssl", 0o755, 0) },
		func() error { return dir("etc/ssl/certs", 0o755, 0) },
		func() error { return file("etc/ssl/certs/ca-certificates.crt", 0o644, ca) },
		func() error { return dir("home", 0o755, 0) },
		func() error { return dir("home/nonroot", 0o700, UID) },
		func() error { return dir("tmp", 0o1777, 0) },
		func() error { return dir("usr", 0o755, 0) },
		func() error { return dir("usr/local", 0o755, 0) },
		func() error { return dir("usr/local/bin", 0o755, 0) },
		func() error { return file("usr/local/bin/ppml", 0o755, bin) },
		func() error { return dir("var", 0o755, 0) },
		func() error { return dir("var/lib", 0o755, 0) },
		func() error { return dir("var/lib/ppml", 0o700, UID) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, fmt.Errorf("image: layer: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// CheckStatic refuses a binary that needs a dynamic loader or shared
// libraries: the image has neither.
func CheckStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("image: %s is not a Linux ELF binary: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("image: %s is dynamically linked (it needs a program interpreter); build it with CGO_ENABLED=0 (ppml k8s image build without --binary does)", path)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		return fmt.Errorf("image: %s needs shared libraries %v; build it with CGO_ENABLED=0", path, libs)
	}
	return nil
}

func binaryArch(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	}
	return "", fmt.Errorf("image: unsupported machine %v", f.Machine)
}

// BuildFlags are the go build flags of a reproducible static binary: the
// same sources and toolchain give the same bytes, and no VCS state or
// build path is stamped into it (it would change the image digest and, in
// the Gramine image, MRENCLAVE).
var BuildFlags = []string{"-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="}

// BuildBinary builds ./cmd/ppml of the module in srcDir as a static Linux
// binary at out, with the go toolchain on PATH.
func BuildBinary(srcDir, out, goarch string) error {
	if goarch == "" {
		goarch = "amd64"
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	args := append([]string{"build"}, BuildFlags...)
	args = append(args, "-o", abs, "./cmd/ppml")
	cmd := exec.Command("go", args...)
	cmd.Dir = srcDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("image: go build in %s: %v\n%s", srcDir, err, b)
	}
	return nil
}

// WriteLayout writes img as an OCI image layout in dir (created; must be
// empty or missing), annotated with ref as org.opencontainers.image.ref.name.
func WriteLayout(dir string, img v1.Image, ref string) error {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("image: %s is not empty; choose a new --out directory", dir)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	var opts []layout.Option
	if ref != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref}))
	}
	if err := p.AppendImage(img, opts...); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	return nil
}

// WriteTar writes img as an OCI archive: the OCI image layout of
// WriteLayout in one tar file (skopeo copy oci-archive:FILE, podman load,
// docker load). Unlike a docker-save tarball it keeps the manifest, so the
// digest stays the one Build computed. Entries are sorted with fixed times.
func WriteTar(path string, img v1.Image, ref string) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("image: %s exists; choose another --out", path)
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".ppml-image-")
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	dir := filepath.Join(tmpDir, "layout")
	if err := WriteLayout(dir, img, ref); err != nil {
		return err
	}
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if err := tarDir(f, dir); err != nil {
		f.Abort()
		return fmt.Errorf("image: %w", err)
	}
	return f.Commit()
}

func tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	var paths []string
	if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	}); err != nil {
		return err
	}
	sort.Strings(paths)
	epoch := time.Unix(0, 0)
	for _, p := range paths {
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.IsDir() {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
				return err
			}
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: int64(len(b)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	return tw.Close()
}
