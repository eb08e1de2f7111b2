package main

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/enclave/sigstruct"
	"github.com/ppml-project/ppml/k8s/material"
)

// Secret of the enclave signing key for image builds.
const (
	enclaveKeySecret = "enclave-key"
	enclaveKeyKey    = "enclave-key.pem"
)

func newEnclaveCmd() *cobra.Command {
	e := &cobra.Command{Use: "enclave", Short: "SGX enclave signing: the key gramine-sgx-sign uses"}
	k := &cobra.Command{Use: "key", Short: "The enclave signing key (RSA-3072, exponent 3)"}
	var f k8sSecretFlags
	gen := &cobra.Command{
		Use:   "generate --out FILE",
		Short: "Generate an enclave signing key for gramine-sgx-sign (PEM, 0600, never printed)",
		Long: `Generate the RSA-3072 key with public exponent 3 that SGX requires for
signing enclaves (gramine-sgx-sign --key FILE), as PEM in FILE, mode 0600.
An existing FILE is never overwritten: a new key changes MRSIGNER and so
every policy and sealed file bound to the old one. The key is never printed;
its MRSIGNER is.

--apply also stores it as Secret enclave-key (key enclave-key.pem) for image
builds in the cluster.`,
		Example: `  ppml enclave key generate --out enclave-key.pem
  ppml enclave key generate --out enclave-key.pem --apply --namespace ppml-build`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.out == "" {
				return errors.New("--out FILE is required: where to write the key")
			}
			if f.dryRun && !f.apply {
				return errors.New("--dry-run needs --apply")
			}
			key, err := sigstruct.GenerateKey()
			if err != nil {
				return err
			}
			if err := sigstruct.WriteKeyFile(f.out, key); err != nil {
				return err
			}
			mrs := sigstruct.MRSigner(&key.PublicKey)
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (RSA-3072, exponent 3, mode 0600)\nmr_signer: %s\n", f.out, hex.EncodeToString(mrs[:]))
			if !f.apply {
				return nil
			}
			pemKey := sigstruct.MarshalKey(key)
			defer clear(pemKey)
			return f.applySecrets(cmd, material.NewSecret(enclaveKeySecret, f.namespace, map[string][]byte{enclaveKeyKey: pemKey}))
		},
	}
	fs := gen.Flags()
	fs.StringVar(&f.out, "out", "", "file to write the PEM key to (mode 0600; must not exist)")
	fs.BoolVar(&f.apply, "apply", false, "also create or update Secret "+enclaveKeySecret+" (key "+enclaveKeyKey+") in the cluster")
	fs.BoolVar(&f.dryRun, "dry-run", false, "with --apply: have the API server validate the change without saving it")
	fs.StringVar(&f.namespace, "namespace", "", "namespace for --apply (default: the kubeconfig context's)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig for --apply; default: $KUBECONFIG, ~/.kube/config, then the in-cluster service account")
	k.AddCommand(gen)
	e.AddCommand(k)
	return e
}
