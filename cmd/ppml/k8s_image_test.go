package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// TestK8sImageBuildCLI: ppml k8s image build writes an OCI layout whose
// digest it prints, and ppml k8s manifests pins that digest.
func TestK8sImageBuildCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "img")
	out, err := runCLI(t, nil, "k8s", "image", "build", "--out", dir, "--source", "../..")
	if err != nil {
		t.Fatal(err)
	}
	digest := strings.TrimSpace(out)
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(digest) {
		t.Fatalf("printed %q, want the digest", out)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := idx.IndexManifest(); m.Manifests[0].Digest.String() != digest {
		t.Fatalf("layout holds %s, printed %s", m.Manifests[0].Digest, digest)
	}
	if _, err := runCLI(t, nil, "k8s", "image", "build", "--out", dir, "--source", "../.."); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("second build into the same --out: %v", err)
	}
	sh, _ := exec.LookPath("sh")
	sh, _ = filepath.EvalSymlinks(sh)
	if _, err := runCLI(t, nil, "k8s", "image", "build", "--out", filepath.Join(t.TempDir(), "x"), "--binary", sh); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("dynamic binary: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		t.Fatal(err)
	}

	ref := "registry.example/ppml@" + digest
	man, err := runCLI(t, nil, "k8s", "manifests", "--image", ref)
	if err != nil || !strings.Contains(man, "image: "+ref) {
		t.Fatalf("manifests --image: %v", err)
	}
	if _, err := runCLI(t, nil, "k8s", "manifests", "--image", "registry.example/ppml@sha256:1234"); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Fatalf("bad digest: %v", err)
	}
}
