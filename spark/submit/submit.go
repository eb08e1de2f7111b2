// Package submit turns the options of BigDL's bigdl-ppml-submit.sh into a
// spark-submit invocation: the command line, the driver and executor pod
// templates and the Spark configuration of the Kubernetes contract (§4, §5),
// with secrets kept off the command line (they go into a 0600 properties
// file). Build validates the combination first and refuses, with the reason,
// what cannot work.
package submit

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Names from the Kubernetes contract.
const (
	DefaultDriverTemplate   = "/ppml/spark-driver-template.yaml"
	DefaultExecutorTemplate = "/ppml/spark-executor-template.yaml"
	DefaultKeyStore         = "/ppml/keys/keystore.jks"
	DefaultServiceAccount   = "spark"
	DefaultPPMLHome         = "/ppml"

	SSLKeysSecret = "ssl-keys"
	SparkSecret   = "spark-secret"
	// SparkSecretDir is where cluster-mode pods mount spark-secret, and
	// SSLPasswordEnv the variable that holds its password there.
	SparkSecretDir   = "/ppml/spark-secret"
	SSLPasswordEnv   = "SPARK_SSL_KEYSTORE_PW"
	KMSSecret        = "kms-secret"
	KubeconfigSecret = "kubeconfig-secret"

	DriverContainer   = "spark-driver"
	ExecutorContainer = "spark-executor"

	// AESMSocket is the host AESM socket mounted into SGX pods.
	AESMSocket = "/var/run/aesmd/aesm.socket"

	// Redacted replaces secret values in printed output.
	Redacted = "<redacted>"
)

// Options are the flags of `ppml submit` (the upstream script's, plus the
// ppml additions).
type Options struct {
	Master     string
	DeployMode string // client or cluster

	SGXEnabled           bool
	SGXDriverJVMMemory   string // JVM heap inside the driver enclave
	SGXExecutorJVMMemory string // JVM heap inside the executor enclaves
	SGXDriverMemory      string // driver enclave size (default 32g)
	SGXExecutorMemory    string // executor enclave size (default 32g)
	SGXLogLevel          string // SGX_LOG_LEVEL, default error

	DriverMemory   string
	DriverCores    int
	ExecutorMemory string
	ExecutorCores  int
	NumExecutors   int
	Name           string
	Class          string
	Conf           []string // K=V, in order; later ones win

	DriverTemplate   string // where the driver template is (written unless DriverTemplateBase)
	ExecutorTemplate string
	// DriverTemplateBase and ExecutorTemplateBase are the contents of
	// operator-supplied templates to extend (the --driver-template file
	// when it exists); empty means generate from scratch.
	DriverTemplateBase   []byte
	ExecutorTemplateBase []byte

	KeyStore       string
	Password       []byte // recovered from ssl-password (or secure_password); nil: see NoSecurity
	NoSecurity     bool   // submit without authentication, SSL and encryption (refused unless set explicitly when Password is nil)
	LegacyCrypto   bool   // 128-bit network and IO encryption keys (upstream); default 256
	ServiceAccount string
	Namespace      string
	Image          string
	DriverHost     string // client mode: address executors reach the driver at ($LOCAL_IP)
	DriverPort     int    // client mode ($RUNTIME_DRIVER_PORT, default 54321)
	DataPVC        string // PVC mounted at /ppml/data (upstream: nfsvolumeclaim); empty: none

	Attestation     bool   // ATTESTATION=true in the pods (kms-secret becomes mandatory)
	AttestationURL  string // ATTESTATION_URL
	AttestationType string // ATTESTATION_TYPE, default BigDLRemoteAttestationService
	QuoteType       string // QUOTE_TYPE, default gramine with SGX
	PCCSURL         string // PCCS_URL
	MallocArenaMax  int    // default 4

	PrimaryKeys []string // NAME=field=value,field=value (see ParsePrimaryKey)

	SparkHome      string // default: the literal $SPARK_HOME (dry runs)
	PPMLHome       string // /ppml: init.sh and the Gramine manifests (SGX client mode)
	PropertiesFile string // where the secret properties go; default <dir of the driver template>/spark-secrets.properties

	Application string
	AppArgs     []string
}

// Plan is what Build produces.
type Plan struct {
	// Command is the program and its arguments. In SGX client mode it is
	// bash -c "./init.sh && gramine-sgx bash" run in Dir with Env, and the
	// spark-submit line is SparkSubmit (handed over in $sgx_command).
	Command     []string
	Dir         string
	Env         []string // added to the environment, K=V
	SparkSubmit []string // the spark-submit argv (equal to Command outside SGX client mode)

	// Conf is every Spark setting (secrets included); ConfOrder lists the
	// keys in the order they appear.
	Conf      map[string]string
	ConfOrder []string
	// Properties is the content of the properties file (secret settings
	// only, one key=value a line) and PropertiesFile its path; empty when
	// there is no secret setting.
	Properties     []byte
	PropertiesFile string

	// Templates (Kubernetes masters only).
	DriverTemplate, ExecutorTemplate         []byte
	DriverTemplatePath, ExecutorTemplatePath string
	WriteDriverTemplate, WriteExecutor       bool

	// Secrets the pods reference (name -> keys), for the cluster checks.
	Secrets map[string][]string
	// ServiceAccount the driver runs as (cluster checks), namespace.
	ServiceAccount, Namespace string
	Kubernetes                bool
	// ConfigMapSecrets are the secret settings that Spark's submission
	// client copies, with every other setting, into the driver's ConfigMap
	// (spark-drv-*-conf-map, key spark.properties) in Kubernetes cluster
	// mode: readable by whoever may read ConfigMaps in the namespace
	// (checked against Spark 3.1.3 by interop.TestSubmitClusterModeRealSparkSubmit).
	ConfigMapSecrets []string
}

// secretKeys are the Spark settings that hold secrets: never on a command line.
var secretKeys = regexp.MustCompile(`(?i)(password|secret|\.kms\.apiKey$|\.kms\.token$|\.plainText$)`)

// IsSecretKey reports whether a Spark setting holds a secret.
func IsSecretKey(k string) bool {
	// Settings that only name where a secret is are not secrets.
	return secretKeys.MatchString(k) && !strings.Contains(k, "secretKeyRef") &&
		!strings.HasPrefix(k, "spark.kubernetes.driver.secrets.") && !strings.HasPrefix(k, "spark.kubernetes.executor.secrets.") &&
		!strings.HasSuffix(k, ".secret.driver.file") && !strings.HasSuffix(k, ".secret.executor.file")
}

// Build validates o and returns the plan.
func Build(o Options) (*Plan, error) {
	if err := defaults(&o); err != nil {
		return nil, err
	}
	if err := validate(&o); err != nil {
		return nil, err
	}
	p := &Plan{Conf: map[string]string{}, Secrets: map[string][]string{}, Namespace: o.Namespace, ServiceAccount: o.ServiceAccount}
	p.Kubernetes = strings.HasPrefix(o.Master, "k8s://")
	set := func(k, v string) {
		if _, ok := p.Conf[k]; !ok {
			p.ConfOrder = append(p.ConfOrder, k)
		}
		p.Conf[k] = v
	}
	cluster := o.DeployMode == "cluster"

	// §5.2, always.
	if !cluster && o.DriverHost != "" {
		set("spark.driver.host", o.DriverHost)
	}
	if !cluster && p.Kubernetes {
		set("spark.driver.port", strconv.Itoa(o.DriverPort))
	}
	set("spark.network.timeout", "10000000")
	set("spark.executor.heartbeatInterval", "10000000")
	set("spark.python.use.daemon", "false")
	set("spark.python.worker.reuse", "false")
	if p.Kubernetes {
		set("spark.kubernetes.namespace", o.Namespace)
		if o.Image != "" {
			set("spark.kubernetes.container.image", o.Image)
		}
		if o.ServiceAccount != "" {
			set("spark.kubernetes.authenticate.driver.serviceAccountName", o.ServiceAccount)
		}
		set("spark.kubernetes.driver.podTemplateFile", o.DriverTemplate)
		set("spark.kubernetes.executor.podTemplateFile", o.ExecutorTemplate)
		set("spark.kubernetes.driver.podTemplateContainerName", DriverContainer)
		set("spark.kubernetes.executor.podTemplateContainerName", ExecutorContainer)
		set("spark.kubernetes.executor.deleteOnTermination", "false")
	}

	// §5.3, security.
	if !o.NoSecurity {
		pw := string(o.Password)
		bits := "256"
		if o.LegacyCrypto {
			bits = "128"
		}
		// In Kubernetes cluster mode Spark copies every setting into the
		// driver's ConfigMap, so the password must not be one: the pods
		// read it from spark-secret, as a mounted file for authentication
		// (Spark base64-encodes the file's bytes into the shared secret) and
		// through ${env:...} substitution for the key store.
		inPods := p.Kubernetes && cluster
		sslPw := pw
		set("spark.authenticate", "true")
		if inPods {
			set("spark.kubernetes.driver.secrets."+SparkSecret, SparkSecretDir)
			set("spark.kubernetes.executor.secrets."+SparkSecret, SparkSecretDir)
			set("spark.authenticate.secret.driver.file", SparkSecretDir+"/secret")
			set("spark.authenticate.secret.executor.file", SparkSecretDir+"/secret")
			set("spark.kubernetes.driver.secretKeyRef."+SSLPasswordEnv, SparkSecret+":secret")
			set("spark.kubernetes.executor.secretKeyRef."+SSLPasswordEnv, SparkSecret+":secret")
			sslPw = "${env:" + SSLPasswordEnv + "}"
		} else {
			set("spark.authenticate.secret", pw)
		}
		if p.Kubernetes {
			set("spark.kubernetes.executor.secretKeyRef.SPARK_AUTHENTICATE_SECRET", SparkSecret+":secret")
			set("spark.kubernetes.driver.secretKeyRef.SPARK_AUTHENTICATE_SECRET", SparkSecret+":secret")
			p.Secrets[SparkSecret] = []string{"secret"}
		}
		set("spark.authenticate.enableSaslEncryption", "true")
		set("spark.network.crypto.enabled", "true")
		set("spark.network.crypto.keyLength", bits)
		set("spark.network.crypto.keyFactoryAlgorithm", "PBKDF2WithHmacSHA1")
		set("spark.io.encryption.enabled", "true")
		set("spark.io.encryption.keySizeBits", bits)
		set("spark.io.encryption.keygen.algorithm", "HmacSHA1")
		set("spark.ssl.enabled", "true")
		set("spark.ssl.port", "8043")
		set("spark.ssl.keyPassword", sslPw)
		set("spark.ssl.keyStorePassword", sslPw)
		set("spark.ssl.trustStorePassword", sslPw)
		set("spark.ssl.keyStore", o.KeyStore)
		set("spark.ssl.trustStore", o.KeyStore)
		set("spark.ssl.keyStoreType", "JKS")
		set("spark.ssl.trustStoreType", "JKS")
	}

	// §5.4, SGX: the patched-Spark keys and, for stock Spark, the
	// entrypoint's variables directly.
	if o.SGXEnabled {
		set("spark.kubernetes.sgx.enabled", "true")
		set("spark.kubernetes.sgx.driver.mem", o.SGXDriverMemory)
		set("spark.kubernetes.sgx.driver.jvm.mem", o.SGXDriverJVMMemory)
		set("spark.kubernetes.sgx.executor.mem", o.SGXExecutorMemory)
		set("spark.kubernetes.sgx.executor.jvm.mem", o.SGXExecutorJVMMemory)
		set("spark.kubernetes.sgx.log.level", o.SGXLogLevel)
		if p.Kubernetes {
			for _, kv := range [][2]string{{"SGX_ENABLED", "true"}, {"SGX_DRIVER_MEM_SIZE", o.SGXDriverMemory},
				{"SGX_DRIVER_JVM_MEM_SIZE", o.SGXDriverJVMMemory}, {"SGX_LOG_LEVEL", o.SGXLogLevel}} {
				set("spark.kubernetes.driverEnv."+kv[0], kv[1])
			}
			for _, kv := range [][2]string{{"SGX_ENABLED", "true"}, {"SGX_EXECUTOR_MEM_SIZE", o.SGXExecutorMemory},
				{"SGX_EXECUTOR_JVM_MEM_SIZE", o.SGXExecutorJVMMemory}, {"SGX_LOG_LEVEL", o.SGXLogLevel}} {
				set("spark.executorEnv."+kv[0], kv[1])
			}
		}
	}

	// BigDL PPMLContext primary keys.
	for _, spec := range o.PrimaryKeys {
		kvs, err := ParsePrimaryKey(spec)
		if err != nil {
			return nil, err
		}
		for _, kv := range kvs {
			set(kv[0], kv[1])
		}
	}
	if len(o.PrimaryKeys) > 0 {
		set("spark.hadoop.io.compression.codecs", "com.intel.analytics.bigdl.ppml.crypto.CryptoCodec")
	}

	// The user's --conf last: they override everything above.
	for _, c := range o.Conf {
		k, v, _ := strings.Cut(c, "=")
		set(k, v)
	}

	// Pod templates.
	if img := p.Conf["spark.kubernetes.container.image"]; img != "" {
		o.Image = img
	}
	if p.Kubernetes {
		var err error
		p.DriverTemplatePath, p.ExecutorTemplatePath = o.DriverTemplate, o.ExecutorTemplate
		p.WriteDriverTemplate, p.WriteExecutor = true, true
		if p.DriverTemplate, err = renderTemplate(o, true, o.DriverTemplateBase); err != nil {
			return nil, fmt.Errorf("--driver-template %s: %w", o.DriverTemplate, err)
		}
		if p.ExecutorTemplate, err = renderTemplate(o, false, o.ExecutorTemplateBase); err != nil {
			return nil, fmt.Errorf("--executor-template %s: %w", o.ExecutorTemplate, err)
		}
		p.Secrets[SSLKeysSecret] = []string{"keystore.jks"}
		p.Secrets[KubeconfigSecret] = []string{"config"}
		if o.Attestation {
			p.Secrets[KMSSecret] = []string{"app_id", "api_key", "policy_id"}
		}
	}

	// The command line: public settings as --conf, secret ones in the
	// properties file.
	sparkSubmit := strings.TrimRight(o.SparkHome, "/") + "/bin/spark-submit"
	argv := []string{sparkSubmit, "--master", o.Master}
	if o.DeployMode != "" {
		argv = append(argv, "--deploy-mode", o.DeployMode)
	}
	if o.Name != "" {
		argv = append(argv, "--name", o.Name)
	}
	if o.Class != "" {
		argv = append(argv, "--class", o.Class)
	}
	for _, f := range []struct{ flag, v string }{{"--driver-memory", o.DriverMemory}, {"--executor-memory", o.ExecutorMemory}} {
		if f.v != "" {
			argv = append(argv, f.flag, f.v)
		}
	}
	for _, f := range []struct {
		flag string
		v    int
	}{{"--driver-cores", o.DriverCores}, {"--executor-cores", o.ExecutorCores}, {"--num-executors", o.NumExecutors}} {
		if f.v > 0 {
			argv = append(argv, f.flag, strconv.Itoa(f.v))
		}
	}
	var props strings.Builder
	for _, k := range p.ConfOrder {
		if IsSecretKey(k) {
			fmt.Fprintf(&props, "%s=%s\n", k, escapeProperty(p.Conf[k]))
			if p.Kubernetes && cluster && !strings.HasPrefix(p.Conf[k], "${env:") {
				p.ConfigMapSecrets = append(p.ConfigMapSecrets, k)
			}
			continue
		}
		argv = append(argv, "--conf", k+"="+p.Conf[k])
	}
	if props.Len() > 0 {
		p.Properties = []byte(props.String())
		p.PropertiesFile = o.PropertiesFile
		argv = append(argv, "--properties-file", o.PropertiesFile)
	}
	argv = append(argv, o.Application)
	argv = append(argv, o.AppArgs...)
	p.SparkSubmit = argv
	p.Command = argv
	if o.SGXEnabled && !cluster {
		// §5.5: the client-mode driver runs inside Gramine-SGX; the image's
		// bash manifest runs $sgx_command.
		p.Dir = o.PPMLHome
		p.Env = []string{"sgx_command=" + ShellJoin(argv)}
		p.Command = []string{"bash", "-c", "./init.sh && gramine-sgx bash"}
	}
	return p, nil
}

func defaults(o *Options) error {
	if o.DriverTemplate == "" {
		o.DriverTemplate = DefaultDriverTemplate
	}
	if o.ExecutorTemplate == "" {
		o.ExecutorTemplate = DefaultExecutorTemplate
	}
	if o.KeyStore == "" {
		o.KeyStore = DefaultKeyStore
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	for _, c := range o.Conf {
		if k, v, ok := strings.Cut(c, "="); ok && k == "spark.kubernetes.namespace" {
			o.Namespace = v
		}
	}
	if o.DriverPort == 0 {
		o.DriverPort = 54321
	}
	if o.SGXDriverMemory == "" {
		o.SGXDriverMemory = "32g"
	}
	if o.SGXExecutorMemory == "" {
		o.SGXExecutorMemory = "32g"
	}
	if o.SGXLogLevel == "" {
		o.SGXLogLevel = "error"
	}
	if o.AttestationType == "" {
		o.AttestationType = "BigDLRemoteAttestationService"
	}
	if o.QuoteType == "" && o.SGXEnabled {
		o.QuoteType = "gramine"
	}
	if o.MallocArenaMax == 0 {
		o.MallocArenaMax = 4
	}
	if o.SparkHome == "" {
		o.SparkHome = "$SPARK_HOME"
	}
	if o.PPMLHome == "" {
		o.PPMLHome = DefaultPPMLHome
	}
	if o.PropertiesFile == "" {
		dir := "."
		if i := strings.LastIndex(o.DriverTemplate, "/"); i >= 0 {
			dir = o.DriverTemplate[:i]
			if dir == "" {
				dir = "/"
			}
		}
		o.PropertiesFile = strings.TrimRight(dir, "/") + "/spark-secrets.properties"
	}
	return nil
}

// validate refuses combinations that cannot work.
func validate(o *Options) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if o.Master == "" {
		bad("--master is required (k8s://https://<api-server>:6443, local[*], ...)")
	}
	if o.Application == "" {
		bad("no application: give the jar or Python file after the options")
	}
	k8s := strings.HasPrefix(o.Master, "k8s://")
	switch o.DeployMode {
	case "client", "cluster":
	case "":
		if k8s {
			bad("--deploy-mode is required with a k8s:// master (client or cluster)")
		}
	default:
		bad("--deploy-mode %q: want client or cluster", o.DeployMode)
	}
	if k8s {
		if o.DriverMemory == "" {
			bad("--driver-memory is required with a k8s:// master")
		}
		if o.ExecutorMemory == "" {
			bad("--executor-memory is required with a k8s:// master")
		}
		if o.DeployMode == "cluster" && o.ServiceAccount == "" {
			bad("cluster mode needs a service account for the driver to create executor pods (--service-account, normally %q)", DefaultServiceAccount)
		}
	}
	for _, m := range []struct{ flag, v string }{{"--driver-memory", o.DriverMemory}, {"--executor-memory", o.ExecutorMemory}} {
		if m.v != "" {
			if _, err := ParseMemory(m.v); err != nil {
				bad("%s: %v", m.flag, err)
			}
		}
	}
	for _, n := range []struct {
		flag string
		v    int
	}{{"--driver-cores", o.DriverCores}, {"--executor-cores", o.ExecutorCores}, {"--num-executors", o.NumExecutors}} {
		if n.v < 0 {
			bad("%s %d: must be positive", n.flag, n.v)
		}
	}
	if o.SGXEnabled {
		check := func(jvmFlag, jvm, encFlag, enc string) {
			if jvm == "" {
				bad("%s is required with --sgx-enabled (the JVM heap inside the enclave)", jvmFlag)
				return
			}
			j, err := ParseMemory(jvm)
			if err != nil {
				bad("%s: %v", jvmFlag, err)
				return
			}
			e, err := ParseMemory(enc)
			if err != nil {
				bad("%s: %v", encFlag, err)
				return
			}
			if j > e {
				bad("%s %s is larger than the enclave (%s %s): the JVM cannot start; keep it below half of the enclave", jvmFlag, jvm, encFlag, enc)
			}
		}
		check("--sgx-driver-jvm-memory", o.SGXDriverJVMMemory, "--sgx-driver-memory", o.SGXDriverMemory)
		check("--sgx-executor-jvm-memory", o.SGXExecutorJVMMemory, "--sgx-executor-memory", o.SGXExecutorMemory)
	} else if o.SGXDriverJVMMemory != "" || o.SGXExecutorJVMMemory != "" {
		bad("--sgx-driver-jvm-memory/--sgx-executor-jvm-memory given without --sgx-enabled")
	}
	for _, c := range o.Conf {
		k, _, ok := strings.Cut(c, "=")
		if !ok || k == "" {
			bad("--conf %q: want KEY=VALUE", c)
		}
	}
	if !o.NoSecurity && len(o.Password) == 0 {
		bad("no password for Spark authentication and SSL: mount the ssl-password Secret (--password-dir, default /ppml/password), export secure_password, or pass --no-security to submit without authentication and encryption")
	}
	if !o.NoSecurity && strings.ContainsAny(string(o.Password), "\r\n") {
		bad("the password contains a line break")
	}
	for _, spec := range o.PrimaryKeys {
		if _, err := ParsePrimaryKey(spec); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var memRE = regexp.MustCompile(`^(\d+)([kmgtp]?)(i?b?)$`)

// ParseMemory parses a Spark or Kubernetes memory size (512m, 1g, 32Gi,
// 34359738368) into bytes; a bare number is bytes.
func ParseMemory(s string) (int64, error) {
	m := memRE.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if m == nil {
		return 0, fmt.Errorf("%q is not a memory size (e.g. 512m, 4g, 32Gi)", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %v", s, err)
	}
	shift := map[string]uint{"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50}[m[2]]
	if n > (1<<62)>>shift {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n << shift, nil
}

// primaryKeyFields maps the accepted field names (BigDL's suffixes and
// short forms) to the spark.bigdl.primaryKey.<NAME>. suffix.
var primaryKeyFields = map[string]string{
	"plainText": "plainText", "material": "material",
	"kms.type": "kms.type", "type": "kms.type",
	"kms.ip": "kms.ip", "ip": "kms.ip", "kms.port": "kms.port", "port": "kms.port",
	"kms.appId": "kms.appId", "appId": "kms.appId", "kms.apiKey": "kms.apiKey", "apiKey": "kms.apiKey",
	"kms.vault": "kms.vault", "vault": "kms.vault", "kms.clientId": "kms.clientId", "clientId": "kms.clientId",
	"kms.user": "kms.user", "user": "kms.user", "kms.token": "kms.token", "token": "kms.token",
}

// kmsTypes maps short KMS type names to BigDL's class names.
var kmsTypes = map[string]string{
	"simple": "SimpleKeyManagementService", "ehsm": "EHSMKeyManagementService",
	"azure": "AzureKeyManagementService", "bigdl": "BigDLKeyManagementService",
}

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// ParsePrimaryKey parses a --primary-key value,
// NAME=field=value[,field=value...], into spark.bigdl.primaryKey.NAME.*
// settings. Fields are BigDL's suffixes (plainText, material, kms.type,
// kms.ip, kms.port, kms.appId, kms.apiKey, kms.vault, kms.clientId,
// kms.user, kms.token) or the same without "kms."; type takes simple, ehsm,
// azure, bigdl or a class name. Exactly one of plainText and material.
func ParsePrimaryKey(spec string) ([][2]string, error) {
	name, rest, ok := strings.Cut(spec, "=")
	if !ok || !nameRE.MatchString(name) || rest == "" {
		return nil, fmt.Errorf("--primary-key %q: want NAME=field=value[,field=value...], e.g. defaultKey=type=ehsm,ip=10.0.0.5,port=9000,material=/ppml/keys/pk", redactSpec(spec))
	}
	fields := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		f, v, ok := strings.Cut(part, "=")
		suffix, known := primaryKeyFields[f]
		if !ok || !known {
			return nil, fmt.Errorf("--primary-key %s: %q is not field=value with a known field (%s)", name, redactField(part), strings.Join(slices.Sorted(maps.Keys(primaryKeyFields)), ", "))
		}
		if _, dup := fields[suffix]; dup {
			return nil, fmt.Errorf("--primary-key %s: %s given twice", name, suffix)
		}
		if suffix == "kms.type" {
			if c, ok := kmsTypes[strings.ToLower(v)]; ok {
				v = c
			}
		}
		fields[suffix] = v
	}
	_, plain := fields["plainText"]
	_, mat := fields["material"]
	if plain == mat {
		return nil, fmt.Errorf("--primary-key %s: give exactly one of plainText (base64 key, no KMS) and material (KMS key reference)", name)
	}
	if plain && len(fields) > 1 {
		return nil, fmt.Errorf("--primary-key %s: plainText takes no kms.* fields", name)
	}
	var out [][2]string
	for _, suffix := range []string{"plainText", "material", "kms.type", "kms.ip", "kms.port", "kms.appId", "kms.apiKey", "kms.vault", "kms.clientId", "kms.user", "kms.token"} {
		if v, ok := fields[suffix]; ok {
			out = append(out, [2]string{"spark.bigdl.primaryKey." + name + "." + suffix, v})
		}
	}
	return out, nil
}

func redactSpec(spec string) string {
	if i := strings.IndexByte(spec, '='); i >= 0 {
		return spec[:i] + "=..."
	}
	return spec
}

func redactField(part string) string {
	f, _, ok := strings.Cut(part, "=")
	if ok {
		return f + "=..."
	}
	return f
}

// escapeProperty escapes a value for a Java properties file.
func escapeProperty(v string) string {
	var b strings.Builder
	for i, r := range v {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == ' ' && i == 0:
			b.WriteString(`\ `)
		case r == '#' || r == '!' || r == '=' || r == ':':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r > 0x7e:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// ShellJoin quotes argv for a POSIX shell.
func ShellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = ShellQuote(a)
	}
	return strings.Join(q, " ")
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// ShellQuote quotes one word for a POSIX shell ($SPARK_HOME is left to
// expand when it starts the word).
func ShellQuote(s string) string {
	if s == "" {
		return "''"
	}
	if shellSafe.MatchString(s) {
		return s
	}
	if rest, ok := strings.CutPrefix(s, "$SPARK_HOME/"); ok && shellSafe.MatchString(rest) {
		return `"$SPARK_HOME"/` + rest
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
