package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/k8s/k8stest"
	"github.com/ppml-project/ppml/k8s/material"
)

const submitTestPassword = "submit-Test-pw"

func runSubmit(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := newSubmitCmd()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetIn(strings.NewReader(""))
	cmd.SetArgs(args)
	cmd.SetContext(context.Background())
	err := cmd.Execute()
	if strings.Contains(out.String()+errb.String(), submitTestPassword) || (err != nil && strings.Contains(err.Error(), submitTestPassword)) {
		t.Fatal("password printed")
	}
	return out.String(), errb.String(), err
}

// submitFixture writes the ssl-password files and a fake spark-submit that
// records its arguments, the properties file and its mode.
func submitFixture(t *testing.T) (passwordDir, sparkHome, record string) {
	t.Helper()
	root := t.TempDir()
	pf, err := material.GeneratePasswordFiles([]byte(submitTestPassword), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	passwordDir = filepath.Join(root, "password")
	if err := os.Mkdir(passwordDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, data := range pf.Files() {
		if err := os.WriteFile(filepath.Join(passwordDir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sparkHome = filepath.Join(root, "spark")
	if err := os.MkdirAll(filepath.Join(sparkHome, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	record = filepath.Join(root, "record")
	script := `#!/bin/sh
# Stand-in for Spark's spark-submit: records what it was given.
rec=` + record + `
: > "$rec.argv"
prev=
for a in "$@"; do
  printf '%s\n' "$a" >> "$rec.argv"
  if [ "$prev" = "--properties-file" ]; then cp "$a" "$rec.props"; stat -c %a "$a" > "$rec.mode"; fi
  prev=$a
done
echo "fake spark-submit ran"
`
	if err := os.WriteFile(filepath.Join(sparkHome, "bin", "spark-submit"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return passwordDir, sparkHome, record
}

func TestSubmitRunsSparkSubmit(t *testing.T) {
	pwDir, sparkHome, record := submitFixture(t)
	t.Setenv("SPARK_HOME", sparkHome)
	t.Setenv("secure_password", "")
	work := filepath.Join(t.TempDir(), "work")
	out, _, err := runSubmit(t, "--master", "k8s://https://10.0.0.1:6443", "--deploy-mode", "cluster",
		"--sgx-enabled", "true", "--sgx-driver-jvm-memory", "2g", "--sgx-executor-jvm-memory", "2g",
		"--driver-memory", "4g", "--executor-memory", "4g", "--num-executors", "2", "--name", "q",
		"--conf", "spark.kubernetes.container.image=img:1", "--class", "com.example.Main",
		"--password-dir", pwDir, "--work-dir", work, "--skip-cluster-checks",
		"--primary-key", "defaultKey=type=ehsm,ip=10.0.0.5,port=9000,appId=a1,apiKey=SECRET-API-KEY,material=/k",
		"local:///app.jar", "--inputPath", "/in", "--sgx-enabled", "true")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "fake spark-submit ran") {
		t.Fatalf("output: %s", out)
	}
	argvB, err := os.ReadFile(record + ".argv")
	if err != nil {
		t.Fatal(err)
	}
	argv := strings.Split(strings.TrimSpace(string(argvB)), "\n")
	joined := strings.Join(argv, " ")
	for _, want := range []string{"--master k8s://https://10.0.0.1:6443", "--deploy-mode cluster", "--class com.example.Main",
		"--conf spark.kubernetes.sgx.driver.jvm.mem=2g", "--conf spark.kubernetes.driver.podTemplateFile=" + filepath.Join(work, "spark-driver-template.yaml"),
		"--properties-file " + filepath.Join(work, "spark-secrets.properties")} {
		if !strings.Contains(joined, want) {
			t.Errorf("argv lacks %q: %s", want, joined)
		}
	}
	// The application's own arguments pass through untouched.
	if tail := strings.Join(argv[len(argv)-5:], " "); tail != "local:///app.jar --inputPath /in --sgx-enabled true" {
		t.Errorf("application and arguments: %q", tail)
	}
	if strings.Contains(joined, submitTestPassword) || strings.Contains(joined, "SECRET-API-KEY") {
		t.Error("secret on the command line")
	}
	props, _ := os.ReadFile(record + ".props")
	mode, _ := os.ReadFile(record + ".mode")
	// Cluster mode: the pods read the password from spark-secret (Spark
	// copies the settings into the driver's ConfigMap), so the file holds
	// only a reference to it, and the API key.
	if !strings.Contains(string(props), `spark.ssl.keyStorePassword=${env\:SPARK_SSL_KEYSTORE_PW}`) || strings.Contains(string(props), submitTestPassword) ||
		!strings.Contains(string(props), "spark.bigdl.primaryKey.defaultKey.kms.apiKey=SECRET-API-KEY") || strings.TrimSpace(string(mode)) != "600" {
		t.Errorf("properties file (mode %s):\n%s", mode, props)
	}
	if _, err := os.Stat(filepath.Join(work, "spark-secrets.properties")); !os.IsNotExist(err) {
		t.Error("properties file left behind")
	}
	tpl, err := os.ReadFile(filepath.Join(work, "spark-driver-template.yaml"))
	if err != nil || !strings.Contains(string(tpl), "sgx.intel.com/epc") || !strings.Contains(string(tpl), "image: img:1") {
		t.Errorf("driver template: %v\n%s", err, tpl)
	}

	// --dry-run runs nothing and shows the same line.
	os.Remove(record + ".argv")
	out, _, err = runSubmit(t, "--master", "local[2]", "--password-dir", pwDir, "--work-dir", work, "--dry-run", "app.py")
	if err != nil || !strings.Contains(out, sparkHome+"/bin/spark-submit \\\n  --master 'local[2]'") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if _, err := os.Stat(record + ".argv"); !os.IsNotExist(err) {
		t.Error("dry run ran spark-submit")
	}

	// Refusals carry the reason.
	_, _, err = runSubmit(t, "--master", "k8s://https://10.0.0.1:6443", "--deploy-mode", "client", "--sgx-enabled",
		"--sgx-driver-jvm-memory", "64g", "--sgx-executor-jvm-memory", "1g", "--driver-memory", "1g", "--executor-memory", "1g",
		"--password-dir", pwDir, "--skip-cluster-checks", "--dry-run", "app.jar")
	if err == nil || !strings.Contains(err.Error(), "--sgx-driver-jvm-memory 64g is larger than the enclave") {
		t.Fatalf("err = %v", err)
	}
	_, _, err = runSubmit(t, "--master", "local[2]", "--dry-run", "--password-dir", filepath.Join(pwDir, "missing"), "app.jar")
	if err == nil || !strings.Contains(err.Error(), "--password-dir") {
		t.Fatalf("err = %v", err)
	}
	// secure_password is the upstream way.
	t.Setenv("secure_password", submitTestPassword)
	if _, _, err := runSubmit(t, "--master", "local[2]", "--dry-run", "app.jar"); err != nil {
		t.Fatal(err)
	}
}

// TestSubmitRefusesMissingSecrets: with a reachable kubeconfig the Secrets
// the pods need are checked before anything runs.
func TestSubmitRefusesMissingSecrets(t *testing.T) {
	c := k8stest.Start(t)
	pwDir, sparkHome, record := submitFixture(t)
	t.Setenv("SPARK_HOME", sparkHome)
	t.Setenv("KUBECONFIG", c.Kubeconfig)
	_, _, err := runSubmit(t, "--master", "k8s://"+c.Config.Host, "--deploy-mode", "cluster",
		"--driver-memory", "1g", "--executor-memory", "1g", "--password-dir", pwDir, "--work-dir", t.TempDir(), "app.jar")
	if err == nil {
		t.Fatal("submitted without the Secrets")
	}
	for _, want := range []string{"refusing to submit", "Secret default/ssl-keys is missing", "Secret default/spark-secret is missing", "ServiceAccount default/spark is missing"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if _, err := os.Stat(record + ".argv"); !os.IsNotExist(err) {
		t.Error("spark-submit ran")
	}
}
