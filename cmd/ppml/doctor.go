package main

import (
	"context"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/k8s/doctor"
	"github.com/ppml-project/ppml/k8s/kube"
)

func newDoctorCmd() *cobra.Command {
	var (
		kubeconfig string
		noCluster  bool
		o          doctor.Options
		out        outputFlag
	)
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check every prerequisite of BigDL PPML on Kubernetes; print what is wrong and the command that fixes it",
		Long: `Check the prerequisites and troubleshooting items of the BigDL PPML
prerequisites page and print, for each failed check, the problem and the
command that fixes it:

  cluster reachable; the Intel SGX device plugin resources on some node;
  the Secrets ssl-keys, ssl-password, spark-secret, kms-secret and
  kubeconfig-secret with the right keys (and one password in ssl-password and
  spark-secret); the kubeconfig's token authenticates as the service account
  (and when it expires); the service account may create pods and may not read
  Secrets (its namespace's, any namespace's, the KMS root key and admin token
  in --kms-namespace);
  with --kms-url: KMS reachable with valid TLS, initialized, unsealed, ready,
  and the AS answering (--as-url, default the KMS URL);
  with --pccs-url: the PCCS answering /sgx/certification/v4/rootcacrl;
  on a node: /dev/sgx_enclave and /dev/sgx_provision (SGX CPU) or
  /dev/tdx_guest (TDX guest) present and usable (--tee).

Exits 1 when a check fails. --output json prints every check, also then.`,
		Example: `  ppml doctor
  ppml doctor --namespace spark-jobs --kms-url https://ppml.default.svc:9000 --ca-file ca.crt --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			var checks []doctor.Check
			if !noCluster {
				c, err := kube.Load(kubeconfig, o.Namespace)
				if c != nil {
					o.Namespace = c.Namespace
				}
				checks = doctor.Run(ctx, c, err, o)
			} else {
				checks = append(doctor.ServiceChecks(ctx, o), doctor.DeviceChecks(o)...)
			}
			rep := doctor.NewReport(o.Namespace, checks)
			if err := out.print(cmd.OutOrStdout(), rep, rep.WriteText); err != nil {
				return err
			}
			return rep.Err()
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig; default: $KUBECONFIG, ~/.kube/config, then the in-cluster service account")
	fs.StringVarP(&o.Namespace, "namespace", "n", "", "namespace of the Spark jobs; default: the kubeconfig context's, else default")
	fs.StringVar(&o.ServiceAccount, "service-account", "", "service account of the Spark driver (default spark)")
	fs.StringVar(&o.KMSNamespace, "kms-namespace", "", "namespace of the KMS Secrets ppml-root-key and ppml-admin-token, checked to be out of the service account's reach (default --namespace)")
	fs.StringVar(&o.KMSURL, "kms-url", os.Getenv("PPML_KMS"), "ppml KMS to check, e.g. https://ppml.default.svc:9000 (env PPML_KMS)")
	fs.StringVar(&o.ASURL, "as-url", "", "Attestation Service to check (default --kms-url)")
	fs.StringVar(&o.CAFile, "ca-file", os.Getenv("PPML_CA_FILE"), "PEM CA certificate(s) trusted for the KMS and AS (env PPML_CA_FILE)")
	fs.StringVar(&o.PCCSURL, "pccs-url", "", "PCCS to check, e.g. https://pccs.example:8081")
	fs.StringVar(&o.PCCSCAFile, "pccs-ca-file", "", "PEM CA certificate(s) trusted for the PCCS")
	fs.StringVar(&o.TEE, "tee", "auto", "local devices to expect: auto (from the CPU flags and /dev), sgx, tdx or none")
	fs.StringVar(&o.DevRoot, "dev-root", "/", "root under which /dev and /proc are looked up (tests, or a host mounted in a pod)")
	fs.BoolVar(&noCluster, "no-cluster", false, "skip the Kubernetes checks (e.g. on a node without a kubeconfig)")
	out.register(cmd, "(printed also when checks fail)")
	_ = fs.MarkHidden("dev-root")
	return cmd
}
