package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/k8s/kube"
	"github.com/ppml-project/ppml/k8s/manifests"
	"github.com/ppml-project/ppml/k8s/material"
	"github.com/ppml-project/ppml/k8s/setup"
)

func newK8sCmd() *cobra.Command {
	k := &cobra.Command{
		Use:   "k8s",
		Short: "Kubernetes: set up a namespace for BigDL PPML jobs, print the KMS/AS manifests",
	}
	k.AddCommand(newK8sSetupCmd(), newK8sManifestsCmd(), newK8sImageCmd())
	return k
}

func newK8sSetupCmd() *cobra.Command {
	var (
		kubeconfig, kubeconfigOut, passwordFile    string
		kmsURL, caFile, adminTokenFile, apiKeyFile string
		apiKey                                     string
		dryRun                                     bool
		timeout                                    time.Duration
		o                                          setup.Options
		out                                        outputFlag
	)
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Configure a namespace for BigDL PPML Spark jobs (service account, RBAC, token, kubeconfig, Secrets); idempotent",
		Long: `Do the "Configure K8S Environment" steps of the BigDL PPML prerequisites page
in one idempotent command, through the Kubernetes API:

  ServiceAccount      spark
  Role                spark-role: pods, services, configmaps,
                      persistentvolumeclaims of the namespace (no Secrets)
  RoleBinding         spark-role -> Role spark-role, subject <namespace>:spark
  token               from the TokenRequest API, valid --token-duration (24h;
                      its expiry is printed); a later run renews it once less
                      than half is left
  kubeconfig          flattened and minified: user spark-user with that token,
                      context spark-context (written to --kubeconfig-out, 0600)
  Secret spark-secret       key secret: the password of ssl-keys/ssl-password
                            (--password-file; else kept, else recovered from ssl-password)
  Secret kms-secret         keys app_id, api_key, policy_id (--kms-app-id and
                            --kms-api-key-file; else kept; else enrolled now
                            with the ppml KMS at --kms-url)
  Secret kubeconfig-secret  key config: the kubeconfig above

--legacy-rbac does what upstream does instead, and says why it is dangerous:
ClusterRoleBinding spark-role -> ClusterRole edit (every Secret of the
cluster, the KMS root key included) and a non-expiring token Secret
spark-service-account-token. Without it, a binding and token Secret left by
an earlier run are removed.

A second run changes nothing and says so. --dry-run prints the manifests
(Secret values not shown) without contacting the cluster or the KMS.
Run 'ppml tls generate' and 'ppml password generate' with --apply first.`,
		Example: `  ppml k8s setup --kms-app-id $APPID --kms-api-key-file app.key --kms-policy-id $POLICY
  ppml k8s setup --kms-url https://ppml.default.svc:9000 --ca-file ca.crt --admin-token-file admin.token --kubeconfig-out spark.kubeconfig
  ppml k8s setup --namespace spark-jobs --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if apiKey != "" && apiKeyFile != "" {
				return fmt.Errorf("--kms-api-key and --kms-api-key-file: give one")
			}
			if apiKeyFile != "" {
				k, err := readTrimmed(apiKeyFile, "--kms-api-key-file")
				if err != nil {
					return err
				}
				if k == "" {
					return fmt.Errorf("--kms-api-key-file %s is empty", apiKeyFile)
				}
				apiKey = k
			}
			o.KMS.APIKey = apiKey
			if (o.KMS.AppID == "") != (o.KMS.APIKey == "") {
				return fmt.Errorf("--kms-app-id and --kms-api-key-file go together")
			}
			if kmsURL != "" && o.KMS.AppID != "" {
				return fmt.Errorf("--kms-url enrolls a new app: do not combine it with --kms-app-id")
			}
			o.TokenTimeout = timeout
			o.ClusterName = setup.ClusterNameOf(kubeconfig)
			if dryRun {
				if kubeconfigOut != "" {
					return fmt.Errorf("--kubeconfig-out cannot be written with --dry-run (there is no token yet)")
				}
				if o.Namespace == "" {
					if c, err := kube.Load(kubeconfig, ""); err == nil {
						o.Namespace = c.Namespace
					}
				}
				b, err := setup.Manifests(o)
				if err != nil {
					return err
				}
				if o.LegacyRBAC {
					fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+setup.LegacyWarning)
				}
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			if passwordFile != "" {
				pw, err := material.ReadPasswordFile(passwordFile, cmd.InOrStdin())
				if err != nil {
					return err
				}
				defer clear(pw)
				o.Password = pw
			}
			if kmsURL != "" {
				cfg := client.Config{URL: kmsURL, CAFile: caFile}
				if adminTokenFile != "" {
					tok, err := readTrimmed(adminTokenFile, "--admin-token-file")
					if err != nil {
						return err
					}
					cfg.AdminToken = tok
				}
				n, err := client.NewNative(cfg)
				if err != nil {
					return err
				}
				o.Enroll = n.Enroll
			}
			c, err := kube.Load(kubeconfig, o.Namespace)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout+2*time.Minute)
			defer cancel()
			rep, err := setup.Setup(ctx, c, o)
			for _, w := range rep.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+w)
			}
			if err != nil {
				printSetup(cmd, rep, &out)
				return err
			}
			if kubeconfigOut != "" {
				res, err := setup.WriteKubeconfig(kubeconfigOut, rep.Kubeconfig)
				if err != nil {
					return err
				}
				rep.Items = append(rep.Items, setup.Item{Kind: "File", Name: kubeconfigOut, Result: res, Note: "kubeconfig, mode 0600"})
			}
			return printSetup(cmd, rep, &out)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of an administrator; default: $KUBECONFIG, ~/.kube/config, then the in-cluster service account")
	fs.StringVarP(&o.Namespace, "namespace", "n", "", "namespace of the Spark jobs (created when missing); default: the kubeconfig context's, else default")
	fs.StringVar(&o.ServiceAccount, "service-account", setup.DefaultServiceAccount, "service account of the Spark driver")
	fs.StringVar(&o.Binding, "binding", setup.DefaultBinding, "name of the RoleBinding (the ClusterRoleBinding with --legacy-rbac)")
	fs.StringVar(&o.Role, "role", setup.DefaultRole, "name of the namespaced Role of the service account")
	fs.BoolVar(&o.LegacyRBAC, "legacy-rbac", false, "upstream's RBAC: ClusterRole edit in every namespace and a non-expiring token Secret (dangerous: reads every Secret, the KMS root key included)")
	fs.DurationVar(&o.TokenDuration, "token-duration", setup.DefaultTokenDuration, "lifetime of the kubeconfig's token (TokenRequest API); run setup again to renew it")
	fs.StringVar(&o.Context, "context", setup.DefaultContext, "context name in the generated kubeconfig")
	fs.StringVar(&o.User, "user", setup.DefaultUser, "user name in the generated kubeconfig")
	fs.StringVar(&kubeconfigOut, "kubeconfig-out", "", "also write the generated kubeconfig (holds the token) to this file, mode 0600")
	fs.StringVar(&passwordFile, "password-file", "", `file with the password of ssl-keys/ssl-password for spark-secret ("-" reads standard input); default: keep spark-secret, else recover the password from ssl-password`)
	fs.StringVar(&kmsURL, "kms-url", "", "ppml KMS to enroll an app with when kms-secret is missing, e.g. https://ppml.default.svc:9000")
	fs.StringVar(&caFile, "ca-file", os.Getenv("PPML_CA_FILE"), "PEM CA certificate(s) trusted for --kms-url (env PPML_CA_FILE)")
	fs.StringVar(&adminTokenFile, "admin-token-file", "", "admin token of the KMS for enrollment with --kms-url")
	fs.StringVar(&o.KMS.AppID, "kms-app-id", "", "KMS/AS app id for kms-secret (with --kms-api-key-file)")
	fs.StringVar(&apiKeyFile, "kms-api-key-file", "", "file holding the KMS/AS API key for kms-secret")
	fs.StringVar(&apiKey, "kms-api-key", "", "the API key itself; prefer --kms-api-key-file, arguments are visible to other local users")
	fs.StringVar(&o.KMS.PolicyID, "kms-policy-id", "", "attestation policy id for kms-secret (ATTESTATION_POLICYID); default: kept, else empty")
	fs.BoolVar(&dryRun, "dry-run", false, "print the manifests instead of applying them (Secret values are not shown)")
	fs.DurationVar(&timeout, "token-timeout", 60*time.Second, "how long to wait for Kubernetes to fill in the service-account token")
	out.register(cmd)
	return cmd
}

func printSetup(cmd *cobra.Command, rep setup.Report, out *outputFlag) error {
	return out.print(cmd.OutOrStdout(), rep.View(), rep.WriteText)
}

func newK8sManifestsCmd() *cobra.Command {
	var o manifests.Options
	var secrets, devicePlugin bool
	cmd := &cobra.Command{
		Use:   "manifests",
		Short: "Print the manifests that run the ppml KMS and AS (same objects as deploy/ with kustomize)",
		Long: `Print, as one YAML stream for kubectl apply -f -, everything that runs ppml
serve (KMS + AS) in a cluster:

  without --postgres  a single-replica StatefulSet, embedded store on a PVC
  with --postgres     a Deployment of --replicas pods on PostgreSQL (--db; the
                      password from Secret ppml-postgres key password, the
                      server verified against its key ca.crt: verify-full)
  always              ServiceAccount; Services ppml (9000 https, 9876 BigDL KMS,
                      9875 BigDL AS), bigdl-key-management-service (9876) and
                      remote-attestation-service (9875); PodDisruptionBudget;
                      NetworkPolicy; TLS from Secret ssl-keys (server.crt,
                      server.key: ppml tls generate --include-plain-key);
                      root key from Secret ppml-root-key; admin token from
                      Secret ppml-admin-token; probes on /healthz and
                      /readyz; resources; non-root, read-only root fs
  --sgx               the Gramine image (deploy/gramine; root key provider
                      shamir) and sgx.intel.com/epc, enclave, provision
  --service-monitor   a Prometheus Operator ServiceMonitor for /metrics

--sgx-device-plugin prints instead what the --sgx variant needs on the
cluster: Intel's SGX device plugin and node feature discovery for pinned
releases (` + manifests.SGXDevicePluginRelease + `).

--secrets prints instead fresh ppml-root-key and ppml-admin-token Secrets:
create them once with kubectl create (a new root key cannot read the keys
stored under the old one). deploy/ holds the same objects as a kustomize base
with overlays embedded, postgres and sgx.`,
		Example: `  ppml k8s manifests --secrets | kubectl create -f -
  ppml k8s manifests | kubectl apply -f -
  ppml k8s manifests --postgres --replicas 3 --db 'postgres://ppml@db.example:5432/ppml?sslmode=verify-full&sslrootcert=/etc/ppml/postgres/ca.crt' | kubectl apply -f -
  kubectl apply -k deploy/overlays/postgres`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			if devicePlugin {
				if secrets || cmd.Flags().NFlag() > 1 {
					return fmt.Errorf("--sgx-device-plugin prints the cluster prerequisite on its own; render the ppml objects in a second call")
				}
				_, err := w.Write(manifests.SGXDevicePlugin())
				return err
			}
			if secrets {
				if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					return fmt.Errorf("--secrets prints a root key: pipe it to 'kubectl create -f -' or redirect it to a file, not to a terminal")
				}
				s, err := manifests.Secrets(o.Namespace, nil)
				if err != nil {
					return err
				}
				b, err := manifests.Marshal(s[0], s[1])
				if err != nil {
					return err
				}
				_, err = w.Write(b)
				return err
			}
			b, err := manifests.Render(o)
			if err != nil {
				return err
			}
			_, err = w.Write(b)
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&o.Namespace, "namespace", "n", "", "namespace written into the objects (default: none, kubectl -n decides)")
	fs.StringVar(&o.Image, "image", "", "container image (default "+manifests.DefaultImage+", with --sgx "+manifests.DefaultSGXImage+")")
	fs.BoolVar(&o.Postgres, "postgres", false, "a Deployment of --replicas pods on PostgreSQL instead of one StatefulSet pod with the embedded store")
	fs.Int32Var(&o.Replicas, "replicas", 0, fmt.Sprintf("replicas with --postgres (default %d)", manifests.DefaultReplicas))
	fs.StringVar(&o.DB, "db", "", "PostgreSQL URL without password with --postgres (default "+manifests.DefaultDB+")")
	fs.StringVar(&o.StorageSize, "storage", "", "PVC size of the embedded store (default "+manifests.DefaultStorageSize+")")
	fs.BoolVar(&o.SGX, "sgx", false, "run inside Gramine-SGX and request the SGX device plugin resources")
	fs.StringVar(&o.EPC, "epc", "", "sgx.intel.com/epc with --sgx: the enclave size the image was built with, ENCLAVE_SIZE (default "+manifests.DefaultEPC+")")
	fs.StringVar(&o.PCCSURL, "pccs-url", "", "PCCS URL passed as --pccs-url (without --sgx; the Gramine manifest carries its own)")
	fs.BoolVar(&o.ServiceMonitor, "service-monitor", false, "add a Prometheus Operator ServiceMonitor")
	fs.StringVar(&o.DBPeer, "egress-db", "", "where the NetworkPolicy lets the pods reach PostgreSQL (port 5432): a CIDR or a pod label selector (default "+manifests.DefaultDBPeer+" with --postgres)")
	fs.StringVar(&o.PCCSPeer, "egress-pccs", "", "where the NetworkPolicy lets the pods reach the PCCS (port of --pccs-url, else 8081): a CIDR or a pod label selector (default "+manifests.DefaultPCCSPeer+")")
	fs.BoolVar(&secrets, "secrets", false, "print fresh ppml-root-key and ppml-admin-token Secrets instead")
	fs.BoolVar(&devicePlugin, "sgx-device-plugin", false, "print instead the SGX prerequisite: Intel's SGX device plugin and node feature discovery ("+manifests.SGXDevicePluginRelease+"); apply it twice (the NodeFeatureRule needs its CRD)")
	return cmd
}
