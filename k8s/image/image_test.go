package image_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/ppml-project/ppml/k8s/image"
)

// wantFiles is everything the image holds.
var wantFiles = []string{
	"etc", "etc/passwd", "etc/group", "etc/ssl", "etc/ssl/certs", "etc/ssl/certs/ca-certificates.crt",
	"home", "home/nonroot", "tmp", "usr", "usr/local", "usr/local/bin", "usr/local/bin/ppml",
	"var", "var/lib", "var/lib/ppml",
}

// TestImageBuildUnpackRun builds the service image from this checkout,
// twice (same digest), writes it as an OCI layout, reads it back, checks
// its config and files, unpacks the root filesystem and runs `ppml serve`
// from it until /healthz answers over HTTPS.
func TestImageBuildUnpackRun(t *testing.T) {
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "ppml")
	if err := image.BuildBinary("../..", bin, ""); err != nil {
		t.Fatal(err)
	}
	if err := image.CheckStatic(bin); err != nil {
		t.Fatal(err)
	}
	img, err := image.Build(image.Options{Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()

	// Reproducible: a second binary built from the same sources, and a
	// second image, give the same digest.
	bin2 := filepath.Join(tmp, "ppml2")
	if err := image.BuildBinary("../..", bin2, ""); err != nil {
		t.Fatal(err)
	}
	b1, _ := os.ReadFile(bin)
	b2, _ := os.ReadFile(bin2)
	if !bytes.Equal(b1, b2) {
		t.Fatal("two builds of the same sources differ")
	}
	img2, err := image.Build(image.Options{Binary: bin2})
	if err != nil {
		t.Fatal(err)
	}
	if d2, _ := img2.Digest(); d1 != d2 {
		t.Fatalf("digests differ: %s, %s", d1, d2)
	}

	dir := filepath.Join(tmp, "layout")
	if err := image.WriteLayout(dir, img, "ppml:test"); err != nil {
		t.Fatal(err)
	}
	if err := image.WriteLayout(dir, img, "ppml:test"); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("second write into the layout: %v", err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != d1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "ppml:test" {
		t.Fatalf("index %+v", im)
	}
	loaded, err := idx.Image(d1)
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, loaded)

	// The OCI archive holds the same layout: same digest once unpacked.
	tarPath := filepath.Join(tmp, "ppml.tar")
	if err := image.WriteTar(tarPath, img, "registry.example/ppml:1"); err != nil {
		t.Fatal(err)
	}
	tarDir := filepath.Join(tmp, "from-tar")
	untar(t, tarPath, tarDir)
	tidx, err := layout.ImageIndexFromPath(tarDir)
	if err != nil {
		t.Fatal(err)
	}
	if tm, _ := tidx.IndexManifest(); len(tm.Manifests) != 1 || tm.Manifests[0].Digest != d1 {
		t.Fatalf("OCI archive index %+v, want digest %s", tm, d1)
	}
	if err := image.WriteTar(tarPath, img, "registry.example/ppml:1"); err == nil {
		t.Fatal("--tar overwrote a file")
	}

	root := filepath.Join(tmp, "rootfs")
	unpack(t, loaded, root)
	runFromRootfs(t, root)
}

func untar(t *testing.T, path, dir string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		b, _ := io.ReadAll(tr)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func checkImage(t *testing.T, img v1.Image) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/ppml"}) || c.Cmd[0] != "serve" {
		t.Fatalf("config %+v", c)
	}
	if !cf.Created.Time.Equal(time.Unix(0, 0)) {
		t.Fatalf("created %v, want the epoch", cf.Created)
	}
	secretish := regexp.MustCompile(`(?i)(key|token|password|secret)`)
	for _, e := range c.Env {
		if secretish.MatchString(strings.SplitN(e, "=", 2)[0]) {
			t.Errorf("env %q looks like a secret", e)
		}
	}
	layers, _ := img.Layers()
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	if m, _ := img.Manifest(); m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.Layers[0].MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
		t.Fatalf("not an OCI image: %s %s", m.MediaType, m.Layers[0].MediaType)
	}
}

// unpack writes the image's root filesystem to root, checking each entry:
// exactly wantFiles, root-owned except the data and home directories, fixed
// times, no shell, no private key.
func unpack(t *testing.T, img v1.Image, root string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: mtime %v", h.Name, h.ModTime)
		}
		owner := 0
		if h.Name == "var/lib/ppml" || h.Name == "home/nonroot" {
			owner = 65532
		}
		if h.Uid != owner || h.Gid != owner {
			t.Errorf("%s: owner %d:%d, want %d", h.Name, h.Uid, h.Gid, owner)
		}
		if want, ok := map[string]int64{"usr/local/bin/ppml": 0o755, "var/lib/ppml": 0o700, "tmp": 0o1777, "etc/passwd": 0o644}[h.Name]; ok && h.Mode&0o7777 != want {
			t.Errorf("%s: mode %o, want %o", h.Name, h.Mode, want)
		}
		p := filepath.Join(root, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if h.Name != "usr/local/bin/ppml" && bytes.Contains(b, []byte("PRIVATE KEY")) {
				t.Errorf("%s holds a private key", h.Name)
			}
			if err := os.WriteFile(p, b, os.FileMode(h.Mode)&0o777); err != nil {
				t.Fatal(err)
			}
		default:
			t.Errorf("%s: unexpected entry type %c", h.Name, h.Typeflag)
		}
	}
	if !slices.Equal(names, wantFiles) {
		t.Fatalf("image files\n%v\nwant\n%v", names, wantFiles)
	}
	if _, err := os.Stat(filepath.Join(root, "bin/sh")); err == nil {
		t.Fatal("the image has a shell")
	}
}

func runFromRootfs(t *testing.T, root string) {
	t.Helper()
	data := t.TempDir()
	cmd := exec.Command(filepath.Join(root, "usr/local/bin/ppml"), "serve", "--addr=127.0.0.1:0", "--data-dir="+data)
	cmd.Env = []string{"SSL_CERT_FILE=" + filepath.Join(root, "etc/ssl/certs/ca-certificates.crt")}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`url=(https://127\.0\.0\.1:\d+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				url <- m[1]
			}
		}
	}()
	var u string
	select {
	case u = <-url:
	case <-time.After(60 * time.Second):
		t.Fatal("ppml serve from the image's rootfs did not start")
	}
	ca, err := os.ReadFile(filepath.Join(data, "tls/server.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := hc.Get(u + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %s", res.Status)
	}
}

func TestBuildRefusesDynamicBinary(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(sh)
	if _, err := image.Build(image.Options{Binary: real}); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("dynamic binary: %v", err)
	}
	if _, err := image.Build(image.Options{}); err == nil {
		t.Fatal("no binary accepted")
	}
	notELF := filepath.Join(t.TempDir(), "x")
	os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755)
	if _, err := image.Build(image.Options{Binary: notELF}); err == nil || !strings.Contains(err.Error(), "not a Linux ELF binary") {
		t.Fatalf("script: %v", err)
	}
}
