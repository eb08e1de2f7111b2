package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/spark/submit"
)

func newSubmitCmd() *cobra.Command {
	var (
		o                                  submit.Options
		driverTemplate, executorTemplate   string
		workDir, passwordDir, kubeconfig   string
		dryRun, skipClusterChecks, sgxFlag bool
	)
	cmd := &cobra.Command{
		Use:   "submit [flags] APPLICATION [APPLICATION ARGS...]",
		Short: "Submit a Spark job to Kubernetes the way BigDL's bigdl-ppml-submit.sh does, with secrets off the command line",
		Long: `Submit a Spark application with BigDL PPML's security configuration.

ppml submit takes the options of BigDL's bigdl-ppml-submit.sh, generates the
driver and executor pod templates (SGX resources and the AESM socket with
--sgx-enabled, ssl-keys at /ppml/keys and kubeconfig-secret at /root/.kube on
the driver, APP_ID/API_KEY/ATTESTATION_POLICYID from kms-secret, the
attestation variables, MALLOC_ARENA_MAX), adds Spark authentication (spark-secret),
SSL with the JKS key store, network and IO encryption, maps --primary-key to
BigDL's spark.bigdl.primaryKey.<NAME>.* settings, and runs
$SPARK_HOME/bin/spark-submit. The password comes from the ssl-password files
(--password-dir) or $secure_password; it and the other secret settings go into
a 0600 properties file, never onto the command line.

With --dry-run it prints the command, the properties file (values redacted)
and the templates, and runs nothing. Everything after APPLICATION is passed
to the application.

When a kubeconfig is reachable (--kubeconfig, $KUBECONFIG, ~/.kube/config or
in-cluster), the Secrets the pods need and the service account are checked
first (--skip-cluster-checks to skip).

Example (client mode, SGX):
  ppml submit --master k8s://https://10.0.0.1:6443 --deploy-mode client \
    --sgx-enabled --sgx-driver-jvm-memory 6g --sgx-executor-jvm-memory 6g \
    --driver-memory 8g --executor-memory 8g --num-executors 2 \
    --conf spark.kubernetes.container.image=intelanalytics/bigdl-ppml-trusted-bigdata-gramine-reference:2.5.0 \
    --class com.intel.analytics.bigdl.ppml.examples.SimpleQuerySparkExample \
    --primary-key defaultKey=type=ehsm,ip=10.0.0.5,port=9000,material=/ppml/keys/primaryKey \
    local:///ppml/jars/bigdl-ppml-spark_3.1.3-2.5.0.jar --inputPath /ppml/data/people.csv --outputPath /ppml/data/out`,
		// Parsed in RunE: upstream writes "--sgx-enabled true" (value as a
		// separate word), which a boolean flag would take for the application.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			fs := cmd.Flags()
			takesValue := func(name string) bool { f := fs.Lookup(name); return f != nil && f.NoOptDefVal == "" }
			if err := fs.Parse(submit.NormalizeArgs(args, takesValue)); err != nil {
				return err
			}
			if help, _ := fs.GetBool("help"); help {
				return cmd.Help()
			}
			args = fs.Args()
			if len(args) == 0 {
				return errors.New("no application: give the jar or Python file after the options (ppml submit --help)")
			}
			o.Application, o.AppArgs = args[0], args[1:]
			o.SGXEnabled = sgxFlag
			workDir, err := submit.Prepare(&o, submit.Inputs{PasswordDir: passwordDir, PasswordDirGiven: fs.Changed("password-dir"),
				DriverTemplate: driverTemplate, DriverTemplateGiven: fs.Changed("driver-template"),
				ExecutorTemplate: executorTemplate, ExecutorTemplateGiven: fs.Changed("executor-template"), WorkDir: workDir})
			if err != nil {
				return err
			}
			plan, err := submit.Build(o)
			if err != nil {
				return fmt.Errorf("refusing to submit:\n%w", err)
			}
			if plan.Kubernetes && !skipClusterChecks {
				if err := plan.CheckClusterOf(cmd.Context(), kubeconfig, cmd.ErrOrStderr()); err != nil {
					return err
				}
			}
			if len(plan.ConfigMapSecrets) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: in Kubernetes cluster mode Spark copies every setting into the driver's ConfigMap (spark-drv-*-conf-map), these secret ones too: %s; whoever may read ConfigMaps in namespace %s can read them (restrict ConfigMap access there)\n",
					strings.Join(plan.ConfigMapSecrets, ", "), plan.Namespace)
			}
			if dryRun {
				return plan.DryRun(cmd.OutOrStdout())
			}
			if err := os.MkdirAll(workDir, 0o700); err != nil {
				return err
			}
			return plan.Run(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.SetInterspersed(false) // everything after APPLICATION belongs to it
	fs.StringVar(&o.Master, "master", os.Getenv("RUNTIME_SPARK_MASTER"), "Spark master, e.g. k8s://https://10.0.0.1:6443 (env RUNTIME_SPARK_MASTER)")
	fs.StringVar(&o.DeployMode, "deploy-mode", "", "client or cluster (required with k8s://)")
	fs.BoolVar(&sgxFlag, "sgx-enabled", false, "run in SGX: the client-mode driver in Gramine-SGX, executors (and a cluster-mode driver) in SGX pods; takes --sgx-enabled or --sgx-enabled=true|false")
	fs.StringVar(&o.SGXDriverJVMMemory, "sgx-driver-jvm-memory", "", "JVM heap inside the driver enclave (required with --sgx-enabled), e.g. 6g")
	fs.StringVar(&o.SGXExecutorJVMMemory, "sgx-executor-jvm-memory", "", "JVM heap inside the executor enclaves (required with --sgx-enabled)")
	fs.StringVar(&o.SGXDriverMemory, "sgx-driver-memory", "32g", "driver enclave size (spark.kubernetes.sgx.driver.mem, SGX_DRIVER_MEM_SIZE); also its EPC request")
	fs.StringVar(&o.SGXExecutorMemory, "sgx-executor-memory", "32g", "executor enclave size; also their EPC request")
	fs.StringVar(&o.SGXLogLevel, "sgx-log-level", "error", "SGX_LOG_LEVEL in the pods")
	fs.StringVar(&o.DriverMemory, "driver-memory", os.Getenv("RUNTIME_DRIVER_MEMORY"), "driver memory (required with k8s://; env RUNTIME_DRIVER_MEMORY)")
	fs.IntVar(&o.DriverCores, "driver-cores", 0, "driver cores")
	fs.StringVar(&o.ExecutorMemory, "executor-memory", "", "executor memory (required with k8s://)")
	fs.IntVar(&o.ExecutorCores, "executor-cores", 0, "cores per executor")
	fs.IntVar(&o.NumExecutors, "num-executors", 0, "number of executors")
	fs.StringVar(&o.Name, "name", "", "application name")
	fs.StringVar(&o.Class, "class", "", "main class (Java/Scala applications)")
	fs.StringArrayVar(&o.Conf, "conf", nil, "Spark setting K=V (repeatable; overrides what ppml sets)")
	fs.StringVar(&driverTemplate, "driver-template", submit.DefaultDriverTemplate, "driver pod template to extend when the file exists (the result is written to --work-dir)")
	fs.StringVar(&executorTemplate, "executor-template", submit.DefaultExecutorTemplate, "executor pod template to extend when the file exists")
	fs.StringVar(&o.KeyStore, "key-store", submit.DefaultKeyStore, "JKS key store for Spark SSL (spark.ssl.keyStore and trustStore), as seen by the driver")
	fs.StringVar(&passwordDir, "password-dir", "/ppml/password", "ssl-password files (key.txt, output.bin) to recover the key store password from; without this flag $secure_password is used first")
	fs.BoolVar(&o.NoSecurity, "no-security", false, "submit without Spark authentication, SSL, network and IO encryption (not for sensitive data)")
	fs.BoolVar(&o.LegacyCrypto, "legacy-crypto-128", false, "128-bit network and IO encryption keys like upstream (default 256)")
	fs.StringVar(&o.ServiceAccount, "service-account", submit.DefaultServiceAccount, "service account of the driver (cluster mode needs one)")
	fs.StringVar(&o.Namespace, "namespace", "", "job namespace (spark.kubernetes.namespace; default: default)")
	fs.StringVar(&o.Image, "image", os.Getenv("RUNTIME_K8S_SPARK_IMAGE"), "driver/executor image (spark.kubernetes.container.image; env RUNTIME_K8S_SPARK_IMAGE)")
	fs.StringVar(&o.DriverHost, "driver-host", "", "client mode: the address executors reach the driver at (default $LOCAL_IP, then $RUNTIME_DRIVER_HOST)")
	fs.IntVar(&o.DriverPort, "driver-port", 0, "client mode: driver port (default $RUNTIME_DRIVER_PORT, then 54321)")
	fs.StringVar(&o.DataPVC, "data-pvc", "", "PersistentVolumeClaim mounted at /ppml/data in the pods (upstream: nfsvolumeclaim)")
	fs.BoolVar(&o.Attestation, "attestation", false, "ATTESTATION=true in the pods: kms-secret (app_id, api_key, policy_id) becomes mandatory")
	fs.StringVar(&o.AttestationURL, "attestation-url", "", "ATTESTATION_URL, e.g. https://ppml-kms.ppml:9000")
	fs.StringVar(&o.AttestationType, "attestation-type", "BigDLRemoteAttestationService", "ATTESTATION_TYPE (BigDLRemoteAttestationService or EHSMAttestationService)")
	fs.StringVar(&o.QuoteType, "quote-type", "", "QUOTE_TYPE (default gramine with --sgx-enabled; TDX for TDX VMs)")
	fs.StringVar(&o.PCCSURL, "pccs-url", "", "PCCS_URL in the pods")
	fs.IntVar(&o.MallocArenaMax, "malloc-arena-max", 4, "MALLOC_ARENA_MAX in the pods (keeps EPC use down)")
	fs.StringArrayVar(&o.PrimaryKeys, "primary-key", nil, "BigDL PPMLContext primary key NAME=field=value,...: fields plainText | material, type (simple, ehsm, azure, bigdl), ip, port, appId, apiKey, vault, clientId, user, token; secret fields go to the properties file")
	fs.StringVar(&o.SparkHome, "spark-home", "", "Spark installation (default $SPARK_HOME)")
	fs.StringVar(&o.PPMLHome, "ppml-home", submit.DefaultPPMLHome, "directory with init.sh and the Gramine manifests (SGX client mode)")
	fs.StringVar(&workDir, "work-dir", "", "where the templates and the properties file are written (default a new directory under $TMPDIR)")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig for the cluster checks (default $KUBECONFIG, ~/.kube/config, in-cluster)")
	fs.BoolVar(&skipClusterChecks, "skip-cluster-checks", false, "do not look for the Secrets and service account in the cluster")
	fs.BoolVar(&dryRun, "dry-run", false, "print the command line, the properties file (redacted) and the templates; run nothing")
	fs.Lookup("sgx-enabled").NoOptDefVal = "true"
	fs.BoolP("help", "h", false, "help for submit")
	return cmd
}
