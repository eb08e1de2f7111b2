package submit

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const testPassword = "Sp4rk-Secret-pw"

// upstream is the client-mode SGX example of the contract (§5.5) with the
// SimpleQuerySparkExample arguments of bigdl-data-format.md §7.3.
func upstream() Options {
	return Options{
		Master: "k8s://https://10.0.0.1:6443", DeployMode: "client",
		SGXEnabled: true, SGXDriverJVMMemory: "1g", SGXExecutorJVMMemory: "1g",
		DriverMemory: "1g", ExecutorMemory: "1g", NumExecutors: 2, DriverCores: 2, ExecutorCores: 4,
		Name:             "simple-query",
		Conf:             []string{"spark.kubernetes.container.image=intelanalytics/bigdl-ppml-trusted-bigdata-gramine-reference:2.5.0-SNAPSHOT"},
		Class:            "com.intel.analytics.bigdl.ppml.examples.SimpleQuerySparkExample",
		DriverTemplate:   "/work/spark-driver-template.yaml",
		ExecutorTemplate: "/work/spark-executor-template.yaml",
		PropertiesFile:   "/work/spark-secrets.properties",
		Password:         []byte(testPassword),
		DriverHost:       "10.0.0.7",
		SparkHome:        "/opt/spark",
		ServiceAccount:   DefaultServiceAccount,
		PrimaryKeys:      []string{"defaultKey=type=ehsm,ip=10.0.0.5,port=9000,appId=app-1,apiKey=ehsm-api-key,material=/ppml/keys/primaryKey"},
		Application:      "local:///ppml/jars/bigdl-ppml-spark_3.1.3-2.5.0-SNAPSHOT.jar",
		AppArgs: []string{"--inputPath", "/ppml/data/people.csv", "--outputPath", "/ppml/data/simple-query-out",
			"--inputEncryptModeValue", "AES/CBC/PKCS5Padding", "--outputEncryptModeValue", "AES/CBC/PKCS5Padding"},
	}
}

func goldenCases() map[string]Options {
	cases := map[string]Options{}

	// The simple query on a local master, as in BigDL's first examples.
	local := upstream()
	local.Master, local.DeployMode, local.SGXEnabled = "local[4]", "", false
	local.SGXDriverJVMMemory, local.SGXExecutorJVMMemory = "", ""
	local.Conf, local.NumExecutors, local.DriverCores, local.ExecutorCores = nil, 0, 0, 0
	local.DriverHost = ""
	cases["simple-query-local"] = local

	cases["k8s-client-sgx"] = upstream()

	c := upstream()
	c.SGXEnabled, c.SGXDriverJVMMemory, c.SGXExecutorJVMMemory = false, "", ""
	cases["k8s-client"] = c

	c = upstream()
	c.DeployMode = "cluster"
	c.SGXDriverMemory, c.SGXExecutorMemory = "16g", "8g"
	c.SGXDriverJVMMemory, c.SGXExecutorJVMMemory = "6g", "3g"
	c.Attestation, c.AttestationURL, c.PCCSURL = true, "https://ppml-kms.ppml.svc:9000", "https://pccs.ppml.svc:18081"
	c.DataPVC = "nfsvolumeclaim"
	cases["k8s-cluster-sgx"] = c

	c = upstream()
	c.DeployMode = "cluster"
	c.SGXEnabled, c.SGXDriverJVMMemory, c.SGXExecutorJVMMemory = false, "", ""
	c.PrimaryKeys = []string{"AmyPK=plainText=YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY=", "BobPK=type=bigdl,ip=10.0.0.6,port=9876,user=bob,token=bob-token,material=bobKey"}
	c.LegacyCrypto = true
	cases["k8s-cluster"] = c
	return cases
}

func TestGolden(t *testing.T) {
	for name, o := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			p, err := Build(o)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := p.DryRun(&buf); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()
			for _, secret := range []string{testPassword, "ehsm-api-key", "bob-token", "YWJjZGVm"} {
				if bytes.Contains(got, []byte(secret)) {
					t.Fatalf("dry-run output shows the secret %q", secret)
				}
			}
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./spark/submit -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("dry run differs from %s (go test ./spark/submit -update after checking):\n%s", path, diff(string(want), string(got)))
			}
		})
	}
}

func diff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out.WriteString("line " + strconv.Itoa(i+1) + ":\n- " + x + "\n+ " + y + "\n")
		}
	}
	return out.String()
}

func TestSecretsOffTheCommandLine(t *testing.T) {
	p, err := Build(upstream())
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(append(append(slices.Clone(p.Command), p.SparkSubmit...), p.Env...), " ")
	for _, s := range []string{testPassword, "ehsm-api-key"} {
		if strings.Contains(all, s) {
			t.Errorf("%q on the command line or in the environment", s)
		}
		if !strings.Contains(string(p.Properties), s) {
			t.Errorf("%q not in the properties file", s)
		}
	}
	for _, k := range []string{"spark.authenticate.secret", "spark.ssl.keyPassword", "spark.ssl.keyStorePassword", "spark.ssl.trustStorePassword"} {
		if p.Conf[k] != testPassword {
			t.Errorf("%s = %q", k, p.Conf[k])
		}
	}
	// SGX client mode: the driver runs in Gramine with the line in $sgx_command.
	if p.Command[0] != "bash" || p.Dir != "/ppml" || !strings.HasPrefix(p.Env[0], "sgx_command=/opt/spark/bin/spark-submit ") {
		t.Errorf("SGX client-mode command: %q in %q env %q", p.Command, p.Dir, p.Env)
	}
	if !slices.Contains(p.SparkSubmit, "--properties-file") {
		t.Error("no --properties-file")
	}
}

func TestConfOrderAndOverride(t *testing.T) {
	o := upstream()
	o.Conf = append(o.Conf, "spark.network.crypto.keyLength=128", "spark.kubernetes.namespace=jobs", "spark.kubernetes.driverEnv.MALLOC_ARENA_MAX=12")
	p, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	if p.Conf["spark.network.crypto.keyLength"] != "128" || p.Namespace != "jobs" || p.Conf["spark.kubernetes.namespace"] != "jobs" {
		t.Errorf("overrides: %v %s", p.Conf["spark.network.crypto.keyLength"], p.Namespace)
	}
	n := 0
	for _, a := range p.SparkSubmit {
		if strings.HasPrefix(a, "spark.network.crypto.keyLength=") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("keyLength appears %d times", n)
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*Options)
		want   string
	}{
		{"driver JVM larger than enclave", func(o *Options) { o.SGXDriverJVMMemory, o.SGXDriverMemory = "40g", "32g" },
			"--sgx-driver-jvm-memory 40g is larger than the enclave (--sgx-driver-memory 32g)"},
		{"executor JVM larger than enclave", func(o *Options) { o.SGXExecutorJVMMemory, o.SGXExecutorMemory = "17Gi", "16g" },
			"--sgx-executor-jvm-memory 17Gi is larger than the enclave"},
		{"SGX without JVM memory", func(o *Options) { o.SGXDriverJVMMemory = "" }, "--sgx-driver-jvm-memory is required with --sgx-enabled"},
		{"cluster without service account", func(o *Options) { o.DeployMode, o.ServiceAccount = "cluster", "" },
			"cluster mode needs a service account"},
		{"k8s without deploy mode", func(o *Options) { o.DeployMode = "" }, "--deploy-mode is required with a k8s:// master"},
		{"bad deploy mode", func(o *Options) { o.DeployMode = "yarn" }, `--deploy-mode "yarn": want client or cluster`},
		{"k8s without memory", func(o *Options) { o.DriverMemory, o.ExecutorMemory = "", "" }, "--driver-memory is required"},
		{"bad memory", func(o *Options) { o.ExecutorMemory = "lots" }, `"lots" is not a memory size`},
		{"no password", func(o *Options) { o.Password = nil }, "no password for Spark authentication and SSL"},
		{"no master", func(o *Options) { o.Master = "" }, "--master is required"},
		{"no application", func(o *Options) { o.Application = "" }, "no application"},
		{"bad conf", func(o *Options) { o.Conf = []string{"novalue"} }, `--conf "novalue": want KEY=VALUE`},
		{"primary key both", func(o *Options) { o.PrimaryKeys = []string{"k=plainText=AAAA,material=x"} }, "exactly one of plainText"},
		{"primary key unknown field", func(o *Options) { o.PrimaryKeys = []string{"k=material=x,colour=red"} }, `"colour=..." is not field=value with a known field`},
		{"primary key syntax", func(o *Options) { o.PrimaryKeys = []string{"=x"} }, "want NAME=field=value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := upstream()
			o.ServiceAccount = DefaultServiceAccount
			tc.modify(&o)
			_, err := Build(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// The cluster golden uses the default service account; without it the
	// plan is refused (checked above); with --no-security no password is needed.
	o := upstream()
	o.Password, o.NoSecurity = nil, true
	p, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Conf["spark.authenticate"]; ok || strings.Contains(string(p.Properties), "spark.ssl") {
		t.Error("--no-security still sets authentication")
	}
}

func TestPrimaryKeyMapping(t *testing.T) {
	kvs, err := ParsePrimaryKey("AmyPK=kms.type=AzureKeyManagementService,vault=v1,clientId=c1,material=/keys/amy")
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{
		{"spark.bigdl.primaryKey.AmyPK.material", "/keys/amy"},
		{"spark.bigdl.primaryKey.AmyPK.kms.type", "AzureKeyManagementService"},
		{"spark.bigdl.primaryKey.AmyPK.kms.vault", "v1"},
		{"spark.bigdl.primaryKey.AmyPK.kms.clientId", "c1"},
	}
	if !slices.Equal(kvs, want) {
		t.Fatalf("got %v", kvs)
	}
	// Secret values never appear in errors.
	_, err = ParsePrimaryKey("k=plainText=SECRETVALUE,apiKey=OTHERSECRET")
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("err = %v", err)
	}
	for _, k := range []string{"spark.bigdl.primaryKey.x.plainText", "spark.bigdl.primaryKey.x.kms.apiKey", "spark.bigdl.primaryKey.x.kms.token", "spark.ssl.keyStorePassword", "spark.authenticate.secret"} {
		if !IsSecretKey(k) {
			t.Errorf("%s not secret", k)
		}
	}
	for _, k := range []string{"spark.kubernetes.driver.secretKeyRef.SPARK_AUTHENTICATE_SECRET", "spark.bigdl.primaryKey.x.kms.appId", "spark.ssl.keyStore"} {
		if IsSecretKey(k) {
			t.Errorf("%s secret", k)
		}
	}
}

func TestParseMemory(t *testing.T) {
	for in, want := range map[string]int64{"1g": 1 << 30, "512m": 512 << 20, "32Gi": 32 << 30, "34359738368": 34359738368, "4GB": 4 << 30, "100k": 102400} {
		if got, err := ParseMemory(in); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	for _, in := range []string{"", "g", "1x", "-1g", "99999999999p"} {
		if _, err := ParseMemory(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestTemplateExtendsOperatorTemplate(t *testing.T) {
	o := upstream()
	o.DriverTemplateBase = []byte(`apiVersion: v1
kind: Pod
metadata:
  labels:
    team: data
spec:
  nodeSelector:
    sgx: "true"
  containers:
  - name: main
    image: my/image:1
    env:
    - name: MALLOC_ARENA_MAX
      value: "12"
    volumeMounts:
    - name: scratch
      mountPath: /scratch
  volumes:
  - name: scratch
    emptyDir: {}
`)
	p, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	s := string(p.DriverTemplate)
	for _, want := range []string{"team: data", "sgx: \"true\"", "name: spark-driver", "image: my/image:1", "value: \"12\"", "mountPath: /scratch", "secretName: ssl-keys", "sgx.intel.com/epc"} {
		if !strings.Contains(s, want) {
			t.Errorf("template lacks %q:\n%s", want, s)
		}
	}
	if strings.Count(s, "MALLOC_ARENA_MAX") != 1 {
		t.Errorf("MALLOC_ARENA_MAX twice:\n%s", s)
	}
	o.DriverTemplateBase = []byte("kind: Service\n")
	if _, err := Build(o); err == nil || !strings.Contains(err.Error(), "want a Pod") {
		t.Fatalf("err = %v", err)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"a-b/c.jar": "a-b/c.jar", "": "''", "it's": `'it'\''s'`, "local[4]": "'local[4]'", "$SPARK_HOME/bin/spark-submit": `"$SPARK_HOME"/bin/spark-submit`} {
		if got := ShellQuote(in); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}
