package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/ppml-project/ppml/k8s/kube"
	"github.com/ppml-project/ppml/k8s/material"
)

// k8sSecretFlags are the flags `keys generate` and `password generate`
// share.
type k8sSecretFlags struct {
	out, passwordFile, namespace, kubeconfig string
	apply, dryRun, force                     bool
}

func (f *k8sSecretFlags) register(cmd *cobra.Command, defaultOut string) {
	fs := cmd.Flags()
	fs.StringVar(&f.out, "out", defaultOut, "output directory; created (mode 0700) when missing, its parent must exist. Files are written 0600, all or none")
	fs.StringVar(&f.passwordFile, "password-file", "", `file whose content (trailing newlines removed) is the password; "-" reads standard input. Without it the password is read from standard input when that is not a terminal, else prompted twice. Never given as an argument`)
	fs.BoolVar(&f.force, "force", false, "overwrite files already present in --out")
	fs.BoolVar(&f.apply, "apply", false, "also create or update the Secret(s) in the cluster (the files are written first)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "with --apply: have the API server validate the change without saving it")
	fs.StringVar(&f.namespace, "namespace", "", "namespace written into the manifests and used by --apply; default: none in the manifests (kubectl apply -n decides), the kubeconfig context's namespace for --apply")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig for --apply; default: $KUBECONFIG, ~/.kube/config, then the in-cluster service account")
}

// readPassword checks the flags both commands share, then reads the password.
func (f *k8sSecretFlags) readPassword(cmd *cobra.Command) ([]byte, error) {
	if f.dryRun && !f.apply {
		return nil, fmt.Errorf("--dry-run needs --apply")
	}
	return material.ReadPassword(material.PasswordInput{
		File:   f.passwordFile,
		Stdin:  cmd.InOrStdin(),
		Prompt: cmd.ErrOrStderr(),
	})
}

// applySecrets creates or updates the Secrets when --apply is set.
func (f *k8sSecretFlags) applySecrets(cmd *cobra.Command, secrets ...*corev1.Secret) error {
	if !f.apply {
		return nil
	}
	c, err := kube.Load(f.kubeconfig, f.namespace)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
	defer cancel()
	suffix := ""
	if f.dryRun {
		suffix = " (server dry run)"
	}
	for _, s := range secrets {
		res, err := c.ApplySecret(ctx, s, f.dryRun)
		if err != nil {
			return err
		}
		ns := s.Namespace
		if ns == "" {
			ns = c.Namespace
		}
		fmt.Fprintf(cmd.OutOrStdout(), "secret/%s %s in namespace %s%s\n", s.Name, res, ns, suffix)
	}
	return nil
}

func printWritten(w io.Writer, dir string, files map[string][]byte, extra ...string) {
	names := make([]string, 0, len(files)+len(extra))
	for n := range files {
		names = append(names, n)
	}
	names = append(names, extra...)
	sort.Strings(names)
	fmt.Fprintf(w, "wrote %s: %s\n", filepath.Clean(dir), strings.Join(names, " "))
}

// keysDeprecation is said on stderr by the old name of ppml tls.
const keysDeprecation = `ppml: "ppml keys" is deprecated and will be removed: use "ppml tls" (same subcommands and flags)`

// newKeysAliasCmd is ppml tls under its old name, hidden, kept for a
// release: each subcommand says so on stderr, then runs unchanged.
func newKeysAliasCmd() *cobra.Command {
	c := newTLSCmd()
	c.Use, c.Hidden = "keys", true
	for _, sub := range c.Commands() {
		run := sub.RunE
		sub.RunE = func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(cmd.ErrOrStderr(), keysDeprecation)
			return run(cmd, args)
		}
	}
	return c
}

func newTLSCmd() *cobra.Command {
	keys := &cobra.Command{
		Use:   "tls",
		Short: "TLS key material for BigDL PPML images (the ssl-keys Secret)",
	}
	var f k8sSecretFlags
	var cn string
	var dns []string
	var ips []net.IP
	var days int
	var includePlainKey, noPlainKey bool
	var certFile, keyFile string
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Generate the ssl-keys Secret: RSA-3072 key, CSR, self-signed certificate, PKCS#12 and JKS key stores, keys.yaml",
		Long: `Generate the content of the ssl-keys Secret that BigDL PPML images mount at
/ppml/keys, without openssl, keytool or prompts other than the password:

  server.csr       PKCS#10 request for the RSA-3072 key
  server.crt       self-signed certificate (--cn, --dns, --ip, --days),
                   or the chain given with --cert/--key
  server.key       only with --include-plain-key: the private key, PKCS#8 PEM, unencrypted
  server.pem       only with --include-plain-key: server.key followed by server.crt
  keystore.pkcs12  key + certificate, protected with the password (BigDL KMS HTTPS)
  keystore.jks     the same as a Java KeyStore; store and key password = the password (Spark TLS)
  keys.yaml        the ssl-keys Secret manifest (kubectl apply -f keys.yaml)

Use the same password for 'ppml password generate' (ssl-password and
spark-secret): the images require one password for all three Secrets.
The password is 6 to 244 printable ASCII characters (what keytool and the
JKS format accept). It is read from --password-file, from standard input
when that is not a terminal, or prompted twice; never from the command line.

The output folder appears complete or not at all. server.key and server.pem
are unencrypted copies of the key; no BigDL image reads them (Spark uses
keystore.jks, the BigDL KMS keystore.pkcs12), so they are left out unless
--include-plain-key is given. ppml serve's own pods (ppml k8s manifests)
read server.key: generate their ssl-keys with --include-plain-key.
Protect the Secret with RBAC and etcd encryption at rest.`,
		Example: `  ppml tls generate --password-file pw.txt --cn bigdl-kms --dns bigdl-kms.default.svc --ip 10.0.0.5
  ppml tls generate --password-file pw.txt --apply --namespace spark-jobs
  kubectl apply -f keys/keys.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := f.readPassword(cmd)
			if err != nil {
				return err
			}
			defer clear(pw)
			if noPlainKey && includePlainKey {
				return fmt.Errorf("--no-plain-key and --include-plain-key contradict each other; leaving the plain key out is the default now, drop --no-plain-key")
			}
			opts := material.KeysOptions{Password: pw, IncludePlainKey: includePlainKey}
			if certFile != "" || keyFile != "" {
				if certFile == "" || keyFile == "" {
					return fmt.Errorf("--cert and --key go together")
				}
				for _, n := range []string{"cn", "dns", "ip", "days"} {
					if cmd.Flags().Changed(n) {
						return fmt.Errorf("--%s cannot be combined with --cert: the supplied certificate defines it", n)
					}
				}
				if opts.CertPEM, err = os.ReadFile(certFile); err != nil {
					return fmt.Errorf("--cert: %w", err)
				}
				if opts.KeyPEM, err = os.ReadFile(keyFile); err != nil {
					return fmt.Errorf("--key: %w", err)
				}
				defer clear(opts.KeyPEM)
			} else {
				opts.CommonName, opts.DNSNames, opts.IPs, opts.Days = cn, dns, ips, days
			}
			k, err := material.GenerateKeys(opts)
			if err != nil {
				return err
			}
			if err := material.WriteKeysDir(f.out, k, f.namespace, f.force); err != nil {
				return err
			}
			printWritten(cmd.OutOrStdout(), f.out, k.Files(), material.KeysManifest)
			return f.applySecrets(cmd, k.Secret(f.namespace))
		},
	}
	f.register(gen, "keys")
	fs := gen.Flags()
	fs.StringVar(&cn, "cn", material.DefaultCN, "certificate subject common name; also the DNS SAN when no --dns/--ip is given")
	fs.StringSliceVar(&dns, "dns", nil, "DNS subjectAltName (repeatable or comma-separated), e.g. bigdl-kms.default.svc")
	fs.IPSliceVar(&ips, "ip", nil, "IP subjectAltName (repeatable or comma-separated)")
	fs.IntVar(&days, "days", material.DefaultDays, "certificate validity in days")
	fs.StringVar(&certFile, "cert", "", "use this PEM certificate chain (leaf first, e.g. CA-signed) instead of a self-signed certificate; needs --key")
	fs.StringVar(&keyFile, "key", "", "unencrypted PEM private key (RSA or ECDSA) of --cert")
	fs.BoolVar(&includePlainKey, "include-plain-key", false, "also write server.key and server.pem, unencrypted copies of the key; no BigDL image reads them (Spark: keystore.jks, BigDL KMS: keystore.pkcs12), ppml serve's own pods (ppml k8s manifests) read server.key")
	fs.BoolVar(&noPlainKey, "no-plain-key", false, "deprecated, no effect: the plain key is left out unless --include-plain-key")
	_ = fs.MarkDeprecated("no-plain-key", "it is the default now (server.key and server.pem are left out unless --include-plain-key)")
	keys.AddCommand(gen)
	return keys
}

func newPasswordCmd() *cobra.Command {
	pwCmd := &cobra.Command{
		Use:   "password",
		Short: "Password material for BigDL PPML images (the ssl-password and spark-secret Secrets)",
	}
	var f k8sSecretFlags
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Generate ssl-password (key.txt, output.bin, password.yaml) and spark-secret (spark-secret.yaml)",
		Long: `Generate the ssl-password Secret that BigDL PPML images mount at /ppml/password,
and the spark-secret Secret (key "secret", read as SPARK_AUTHENTICATE_SECRET):

  key.txt            RSA-2048 private key, PEM, unencrypted
  output.bin         RSA PKCS#1 v1.5 encryption of the password plus a newline
  password.yaml      the ssl-password Secret manifest (key.txt, output.bin)
  spark-secret.yaml  the spark-secret Secret manifest (holds the password itself)

Images recover the password with
  openssl rsautl -inkey /ppml/password/key.txt -decrypt </ppml/password/output.bin
Because the key sits next to the ciphertext this is obfuscation only: the
protection comes from Kubernetes RBAC (who can read Secrets or create pods in
the namespace) and from etcd encryption at rest.

Use the same password as for 'ppml tls generate'. It is read from
--password-file, from standard input when that is not a terminal, or
prompted twice; never from the command line.`,
		Example: `  ppml password generate --password-file pw.txt
  ppml password generate --password-file pw.txt --apply --namespace spark-jobs
  kubectl apply -f password/password.yaml -f password/spark-secret.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := f.readPassword(cmd)
			if err != nil {
				return err
			}
			defer clear(pw)
			p, err := material.GeneratePasswordFiles(pw, nil)
			if err != nil {
				return err
			}
			if err := material.WritePasswordDir(f.out, p, pw, f.namespace, f.force); err != nil {
				return err
			}
			printWritten(cmd.OutOrStdout(), f.out, p.Files(), material.PasswordManifest, material.SparkSecretManifest)
			return f.applySecrets(cmd, p.Secret(f.namespace), material.SparkSecretFor(pw, f.namespace))
		},
	}
	f.register(gen, "password")
	pwCmd.AddCommand(gen)
	return pwCmd
}
