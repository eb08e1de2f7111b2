package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/k8s/image"
)

func newK8sImageCmd() *cobra.Command {
	img := &cobra.Command{Use: "image", Short: "The KMS/AS container image, built without a container engine"}
	var (
		out, binary, source, caBundle, tag, created string
		asTar                                       bool
	)
	build := &cobra.Command{
		Use:   "build --out DIR",
		Short: "Build the KMS/AS image as an OCI image layout (or --tar archive) from the static ppml binary",
		Long: `Build the image that ppml k8s manifests deploys, without Docker: one layer
with the static ppml binary (/usr/local/bin/ppml), the CA bundle and a
passwd naming user 65532; no shell, no package manager, no secrets. It runs
as 65532:65532 with entrypoint ppml and command serve.

Without --binary, ./cmd/ppml of --source is built with CGO_ENABLED=0
-trimpath -buildvcs=false. Every time in the image is --created (default
the Unix epoch), so the same sources, toolchain and CA bundle give the same
digest. The digest is printed: deploy with ppml k8s manifests --image
REF@DIGEST after pushing (crane push DIR REF, or skopeo copy
oci:DIR docker://REF / oci-archive:FILE with --tar).`,
		Example: `  ppml k8s image build --out ppml-image
  crane push ppml-image registry.example/ppml:1.0
  ppml k8s manifests --image registry.example/ppml@sha256:<digest> | kubectl apply -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out is required: the OCI layout directory (or the archive file with --tar)")
			}
			var when time.Time
			if created != "" {
				t, err := time.Parse(time.RFC3339, created)
				if err != nil {
					return fmt.Errorf("--created %q: want RFC 3339, e.g. 2026-01-02T00:00:00Z", created)
				}
				when = t
			}
			if binary == "" {
				tmp, err := os.MkdirTemp("", "ppml-image-build-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				binary = filepath.Join(tmp, "ppml")
				fmt.Fprintf(cmd.ErrOrStderr(), "building %s/cmd/ppml (CGO_ENABLED=0 %v)\n", source, image.BuildFlags)
				if err := image.BuildBinary(source, binary, ""); err != nil {
					return err
				}
			}
			i, err := image.Build(image.Options{Binary: binary, CABundle: caBundle, Created: when, Source: "https://github.com/ppml-project/ppml"})
			if err != nil {
				return err
			}
			if asTar {
				err = image.WriteTar(out, i, tag)
			} else {
				err = image.WriteLayout(out, i, tag)
			}
			if err != nil {
				return err
			}
			d, err := i.Digest()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", d)
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s; after pushing it as REF: ppml k8s manifests --image REF@%s\n", out, d)
			return nil
		},
	}
	fs := build.Flags()
	fs.StringVar(&out, "out", "", "OCI image layout directory to create (with --tar: the archive file)")
	fs.BoolVar(&asTar, "tar", false, "write an OCI archive file (skopeo copy oci-archive:FILE ..., podman load, docker load) instead of a directory")
	fs.StringVar(&binary, "binary", "", "use this static ppml binary instead of building one")
	fs.StringVar(&source, "source", ".", "module root to build ./cmd/ppml from when --binary is not given")
	fs.StringVar(&caBundle, "ca-bundle", image.DefaultCABundle, "CA bundle copied to /etc/ssl/certs/ca-certificates.crt")
	fs.StringVar(&tag, "tag", "ppml:latest", "reference name recorded in the layout (org.opencontainers.image.ref.name)")
	fs.StringVar(&created, "created", "", "image and file time, RFC 3339 (default the Unix epoch; e.g. the commit time for SOURCE_DATE_EPOCH-style builds)")
	img.AddCommand(build)
	return img
}
