package submit

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The goldens in testdata/ pin ppml's own output. This test checks the same
// cases against what BigDL's script produces for the same options, derived
// by hand from the script's text: intel-analytics/BigDL,
// ppml/trusted-bigdata/bigdl-ppml-submit.sh at commit 035f844100 (February
// 2023, the script the BigDL Kubernetes contract reference §5 describes; the
// later copy in ppml/trusted-machine-learning/SparkML differs only in the
// java class path). What the script does, as read:
//
//   - --master and --deploy-mode are passed on, and so is every other
//     "--flag value" it does not consume (--name, --class, --num-executors,
//     --driver-cores, --executor-cores, --conf, ...); the first
//     non-option argument and everything after it is the application.
//   - --driver-memory and --executor-memory are consumed and passed on only
//     when the master starts with k8s.
//   - --sgx-enabled true adds spark.kubernetes.sgx.enabled and the two
//     spark.kubernetes.sgx.*.jvm.mem settings (both required).
//   - always: spark.driver.host=$LOCAL_IP, spark.driver.port=
//     $RUNTIME_DRIVER_PORT, spark.network.timeout and
//     spark.executor.heartbeatInterval 10000000, spark.python.use.daemon and
//     spark.python.worker.reuse false, the service account spark, both pod
//     template files, spark.kubernetes.executor.deleteOnTermination=false.
//   - with $secure_password: spark.authenticate (secret on the command
//     line, and from spark-secret:secret in both pods), SASL encryption,
//     network crypto with 128-bit keys and PBKDF2WithHmacSHA1, IO
//     encryption with 128-bit keys and HmacSHA1, SSL on port 8043 with the
//     JKS key store as key and trust store and the password for all three.
//   - SGX outside cluster mode: sgx_command is exported with the
//     spark-submit line, then ./init.sh and gramine-sgx bash run (in /ppml).
//
// ppml's deliberate differences are listed in deviations, each with its
// reason, and asserted exactly; anything else upstream sets must be there
// with upstream's value. Settings ppml adds (namespace, container names,
// enclave sizes, SGX environment, BigDL primary keys, ...) are outside the
// script and not checked here.

type upstreamSubmit struct {
	conf  map[string]string
	flags map[string]string // spark-submit flags with their values
	sgx   bool              // runs under gramine-sgx bash with sgx_command
}

// bigdlPPMLSubmit is the script's behaviour for Options o.
func bigdlPPMLSubmit(o Options) upstreamSubmit {
	u := upstreamSubmit{conf: map[string]string{}, flags: map[string]string{"--master": o.Master}}
	if o.DeployMode != "" {
		u.flags["--deploy-mode"] = o.DeployMode
	}
	// Options a user hands to the script as pass-through flags.
	if o.Name != "" {
		u.flags["--name"] = o.Name
	}
	if o.Class != "" {
		u.flags["--class"] = o.Class
	}
	for flag, n := range map[string]int{"--num-executors": o.NumExecutors, "--driver-cores": o.DriverCores, "--executor-cores": o.ExecutorCores} {
		if n != 0 {
			u.flags[flag] = strconv.Itoa(n)
		}
	}
	for _, kv := range o.Conf {
		k, v, _ := strings.Cut(kv, "=")
		u.conf[k] = v
	}
	if strings.HasPrefix(o.Master, "k8s") {
		u.flags["--driver-memory"], u.flags["--executor-memory"] = o.DriverMemory, o.ExecutorMemory
	}
	if o.SGXEnabled {
		u.conf["spark.kubernetes.sgx.enabled"] = "true"
		u.conf["spark.kubernetes.sgx.driver.jvm.mem"] = o.SGXDriverJVMMemory
		u.conf["spark.kubernetes.sgx.executor.jvm.mem"] = o.SGXExecutorJVMMemory
	}
	port := o.DriverPort
	if port == 0 {
		port = 54321 // $RUNTIME_DRIVER_PORT in the images
	}
	keyStore := DefaultKeyStore
	for k, v := range map[string]string{
		"spark.driver.host":                                       o.DriverHost,
		"spark.driver.port":                                       strconv.Itoa(port),
		"spark.network.timeout":                                   "10000000",
		"spark.executor.heartbeatInterval":                        "10000000",
		"spark.python.use.daemon":                                 "false",
		"spark.python.worker.reuse":                               "false",
		"spark.kubernetes.authenticate.driver.serviceAccountName": "spark",
		"spark.kubernetes.driver.podTemplateFile":                 o.DriverTemplate,
		"spark.kubernetes.executor.podTemplateFile":               o.ExecutorTemplate,
		"spark.kubernetes.executor.deleteOnTermination":           "false",
	} {
		u.conf[k] = v
	}
	if pw := string(o.Password); pw != "" {
		for k, v := range map[string]string{
			"spark.authenticate":        "true",
			"spark.authenticate.secret": pw,
			"spark.kubernetes.executor.secretKeyRef.SPARK_AUTHENTICATE_SECRET": "spark-secret:secret",
			"spark.kubernetes.driver.secretKeyRef.SPARK_AUTHENTICATE_SECRET":   "spark-secret:secret",
			"spark.authenticate.enableSaslEncryption":                          "true",
			"spark.network.crypto.enabled":                                     "true",
			"spark.network.crypto.keyLength":                                   "128",
			"spark.network.crypto.keyFactoryAlgorithm":                         "PBKDF2WithHmacSHA1",
			"spark.io.encryption.enabled":                                      "true",
			"spark.io.encryption.keySizeBits":                                  "128",
			"spark.io.encryption.keygen.algorithm":                             "HmacSHA1",
			"spark.ssl.enabled":                                                "true",
			"spark.ssl.port":                                                   "8043",
			"spark.ssl.keyPassword":                                            pw,
			"spark.ssl.keyStore":                                               keyStore,
			"spark.ssl.keyStorePassword":                                       pw,
			"spark.ssl.keyStoreType":                                           "JKS",
			"spark.ssl.trustStore":                                             keyStore,
			"spark.ssl.trustStorePassword":                                     pw,
			"spark.ssl.trustStoreType":                                         "JKS",
		} {
			u.conf[k] = v
		}
	}
	u.sgx = o.SGXEnabled && o.DeployMode != "cluster"
	return u
}

// deviation is ppml's value for a setting ("" = not set) and why.
type deviation struct{ ppml, why string }

func deviations(o Options) map[string]deviation {
	d := map[string]deviation{}
	k8s := strings.HasPrefix(o.Master, "k8s://")
	if !o.LegacyCrypto && len(o.Password) > 0 {
		d["spark.network.crypto.keyLength"] = deviation{"256", "256-bit keys by default; --legacy-crypto gives upstream's 128"}
		d["spark.io.encryption.keySizeBits"] = deviation{"256", "256-bit keys by default; --legacy-crypto gives upstream's 128"}
	}
	if o.DeployMode == "cluster" || !k8s {
		why := "the driver address is set only for a client-mode driver that executor pods must reach; upstream sets the submitting host's $LOCAL_IP even for a driver pod in cluster mode"
		d["spark.driver.host"] = deviation{"", why}
		d["spark.driver.port"] = deviation{"", why}
	}
	if k8s && o.DeployMode == "cluster" && len(o.Password) > 0 {
		why := "in Kubernetes cluster mode Spark copies every setting into the driver's ConfigMap, so the pods read the password from spark-secret (authentication from a mounted file, SSL through ${env:...}) instead (checked against real Spark by interop.TestSubmitClusterModeRealSparkSubmit)"
		d["spark.authenticate.secret"] = deviation{"", why}
		for _, k := range []string{"spark.ssl.keyPassword", "spark.ssl.keyStorePassword", "spark.ssl.trustStorePassword"} {
			d[k] = deviation{"${env:" + SSLPasswordEnv + "}", why}
		}
	}
	if !k8s {
		why := "Kubernetes settings only for k8s:// masters (upstream sets them for every master, where Spark ignores them)"
		for _, k := range []string{"spark.kubernetes.authenticate.driver.serviceAccountName", "spark.kubernetes.driver.podTemplateFile",
			"spark.kubernetes.executor.podTemplateFile", "spark.kubernetes.executor.deleteOnTermination",
			"spark.kubernetes.executor.secretKeyRef.SPARK_AUTHENTICATE_SECRET", "spark.kubernetes.driver.secretKeyRef.SPARK_AUTHENTICATE_SECRET"} {
			d[k] = deviation{"", why}
		}
	}
	return d
}

// parseSparkSubmit splits a spark-submit argv into its flags (--conf
// separately) and the application with its arguments.
func parseSparkSubmit(t *testing.T, argv []string) (flags, conf map[string]string, app []string) {
	t.Helper()
	if !strings.HasSuffix(argv[0], "/bin/spark-submit") {
		t.Fatalf("argv[0] %q is not spark-submit", argv[0])
	}
	flags, conf = map[string]string{}, map[string]string{}
	i := 1
	for ; i < len(argv) && strings.HasPrefix(argv[i], "--"); i += 2 {
		if argv[i] == "--verbose" {
			i--
			continue
		}
		if argv[i] == "--conf" {
			k, v, _ := strings.Cut(argv[i+1], "=")
			conf[k] = v
			continue
		}
		flags[argv[i]] = argv[i+1]
	}
	return flags, conf, argv[i:]
}

func TestMatchesUpstreamScript(t *testing.T) {
	for name, o := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			p, err := Build(o)
			if err != nil {
				t.Fatal(err)
			}
			up := bigdlPPMLSubmit(o)
			dev := deviations(o)
			flags, onLine, app := parseSparkSubmit(t, p.SparkSubmit)

			// Every upstream setting, with upstream's value unless a listed
			// deviation says otherwise.
			for _, k := range slices.Sorted(maps.Keys(up.conf)) {
				want := up.conf[k]
				if d, ok := dev[k]; ok {
					if got, set := p.Conf[k]; d.ppml == "" && set || d.ppml != "" && got != d.ppml {
						t.Errorf("%s = %q, the listed deviation says %q (%s)", k, got, d.ppml, d.why)
					}
					continue
				}
				if got, ok := p.Conf[k]; !ok || got != want {
					t.Errorf("%s = %q (set %v); bigdl-ppml-submit.sh sets %q", k, got, ok, want)
				}
			}
			for k := range dev {
				if _, ok := up.conf[k]; !ok && !strings.Contains(k, "secretKeyRef") && !strings.HasPrefix(k, "spark.network") && !strings.HasPrefix(k, "spark.io") {
					t.Errorf("deviation %s listed for a setting upstream does not make here", k)
				}
			}
			// Secrets travel in the properties file, never on the command
			// line; everything else is on the command line as upstream.
			for k, v := range p.Conf {
				secret := strings.Contains(strings.ToLower(k), "password") || strings.HasSuffix(k, ".secret") ||
					strings.HasSuffix(k, ".apiKey") || strings.HasSuffix(k, ".token") || strings.HasSuffix(k, ".plainText")
				if got, ok := onLine[k]; secret && ok {
					t.Errorf("secret setting %s on the spark-submit command line", k)
				} else if !secret && got != v {
					t.Errorf("%s: command line %q, plan %q", k, got, v)
				}
				if secret && !strings.Contains("\n"+string(p.Properties), "\n"+k+"=") {
					t.Errorf("secret setting %s not in the properties file", k)
				}
			}
			// The flags.
			for f, want := range up.flags {
				if got := flags[f]; got != want {
					t.Errorf("spark-submit %s %q; bigdl-ppml-submit.sh passes %q", f, got, want)
				}
			}
			if !strings.HasPrefix(o.Master, "k8s") {
				// Upstream consumes --driver-memory and --executor-memory and
				// drops them for other masters, so they are silently ignored
				// there; ppml passes them on.
				if flags["--driver-memory"] != o.DriverMemory || flags["--executor-memory"] != o.ExecutorMemory {
					t.Errorf("local master: memory flags %v", flags)
				}
			}
			if want := append([]string{o.Application}, o.AppArgs...); !slices.Equal(app, want) {
				t.Errorf("application %q, want %q", app, want)
			}
			// Where it runs: under Gramine with sgx_command in SGX client
			// mode, directly otherwise.
			if up.sgx {
				env := strings.Join(p.Env, "\n")
				if !slices.Equal(p.Command, []string{"bash", "-c", "./init.sh && gramine-sgx bash"}) || p.Dir != DefaultPPMLHome ||
					!strings.Contains(env, "sgx_command="+strings.Join(p.SparkSubmit, " ")) {
					t.Errorf("SGX client mode: command %q in %q, env %q", p.Command, p.Dir, p.Env)
				}
			} else if !slices.Equal(p.Command, p.SparkSubmit) {
				t.Errorf("command %q, want spark-submit itself", p.Command)
			}
		})
	}
}
