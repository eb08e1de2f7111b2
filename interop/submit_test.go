package interop

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ppml-project/ppml/k8s/k8stest"
)

// TestSubmitClusterModeRealSparkSubmit: ppml submit runs the real
// spark-submit in cluster mode against a real kube-apiserver, set up with
// the README's commands (ppml keys generate / password generate --apply,
// ppml k8s setup against a real ppml serve), submitting as the spark
// service account with the kubeconfig setup wrote. There is no kubelet, so
// the driver pod stays Pending; the test reads what the API server holds:
// the driver pod carries ppml's template (SGX resources, ssl-keys,
// kubeconfig-secret, kms-secret environment, attestation variables), and
// neither the password nor the API key appears in the pod, in any
// ConfigMap (Spark's driver configuration map included) or on the
// command line.
func TestSubmitClusterModeRealSparkSubmit(t *testing.T) {
	c := k8stest.Start(t)
	s := startServe(t)
	dir := t.TempDir()
	const password = "Interop-Submit-pw-7"
	const apiKey = "Interop-API-key-secret-9"
	pwFile := filepath.Join(dir, "pw.txt")
	writeFile0600(t, pwFile, password)
	kube := []string{"KUBECONFIG=" + c.Kubeconfig}

	s.ppml(t, kube, "keys", "generate", "--password-file", pwFile, "--dns", "ppml,localhost", "--out", filepath.Join(dir, "keys"), "--apply", "--namespace", "default")
	s.ppml(t, kube, "password", "generate", "--password-file", pwFile, "--out", filepath.Join(dir, "password"), "--apply", "--namespace", "default")
	sparkKubeconfig := filepath.Join(dir, "spark.kubeconfig")
	s.ppml(t, kube, "k8s", "setup", "--kms-url", s.URL, "--ca-file", s.CAFile, "--admin-token-file", s.AdminTokenFile,
		"--kubeconfig-out", sparkKubeconfig, "--password-file", pwFile, "--namespace", "default")

	ctx := context.Background()
	kmsSecret, err := c.Clientset.CoreV1().Secrets("default").Get(ctx, "kms-secret", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	enrolledKey := string(kmsSecret.Data["api_key"])
	if enrolledKey == "" {
		t.Fatal("ppml k8s setup wrote kms-secret without api_key")
	}

	// Submit as the spark service account (least-privilege Role).
	work := filepath.Join(dir, "work")
	args := []string{"submit", "--master", "k8s://" + c.Config.Host, "--deploy-mode", "cluster",
		"--sgx-enabled", "true", "--sgx-driver-jvm-memory", "1g", "--sgx-executor-jvm-memory", "1g",
		"--driver-memory", "2g", "--executor-memory", "2g", "--num-executors", "1", "--name", "simple-query",
		"--conf", "spark.kubernetes.container.image=intelanalytics/bigdl-ppml-trusted-bigdata-gramine-reference:2.4.0",
		"--conf", "spark.kubernetes.submission.waitAppCompletion=false",
		"--class", "com.intel.analytics.bigdl.ppml.examples.SimpleQuerySparkExample",
		"--password-dir", filepath.Join(dir, "password"), "--work-dir", work,
		"--primary-key", "defaultKey=type=ehsm,ip=kms,port=9000,appId=interop-app,apiKey=" + apiKey + ",material=/ppml/keys/primaryKey",
		"local:///ppml/jars/bigdl-ppml-spark_3.1.3-2.4.0.jar",
		"--inputPath", "/ppml/data/encrypted/people", "--inputEncryptModeValue", "AES/CBC/PKCS5Padding",
		"--outputPath", "/ppml/data/encrypted/out", "--outputEncryptModeValue", "AES/CBC/PKCS5Padding"}
	cmd := exec.Command(ppmlBin, args...)
	cmd.Env = append(os.Environ(), "SPARK_HOME="+engines.SparkHome, "JAVA_HOME="+engines.JavaHome, "KUBECONFIG="+sparkKubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ppml submit: %v\n%s", err, tailString(out, 6000))
	}
	// Submitting as the spark service account, which may not read Secrets:
	// those checks are reported as not done, and the ConfigMap gap is told.
	for _, want := range []string{"note: not checked: Secret default/ssl-keys", "note: not checked: ServiceAccount default/spark",
		"warning: in Kubernetes cluster mode Spark copies every setting into the driver's ConfigMap (spark-drv-*-conf-map), these secret ones too: spark.bigdl.primaryKey.defaultKey.kms.apiKey;"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ppml submit did not say %q:\n%s", want, tailString(out, 3000))
		}
	}

	// The driver pod the real spark-submit created.
	var driver *corev1.Pod
	deadline := time.Now().Add(60 * time.Second)
	for driver == nil && time.Now().Before(deadline) {
		pods, err := c.Clientset.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "spark-role=driver"})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) == 1 {
			driver = &pods.Items[0]
		} else {
			time.Sleep(500 * time.Millisecond)
		}
	}
	if driver == nil {
		t.Fatalf("no driver pod (label spark-role=driver) after ppml submit:\n%s", tailString(out, 4000))
	}
	if driver.Status.Phase != corev1.PodPending {
		t.Errorf("driver pod phase %s, want Pending (no kubelet)", driver.Status.Phase)
	}
	if driver.Spec.ServiceAccountName != "spark" {
		t.Errorf("driver service account %q, want spark", driver.Spec.ServiceAccountName)
	}
	if driver.Labels["ppml.io/spark-role"] != "driver" {
		t.Errorf("driver pod lacks the template's label ppml.io/spark-role=driver: %v", driver.Labels)
	}
	var ctr *corev1.Container
	for i := range driver.Spec.Containers {
		if driver.Spec.Containers[i].Name == "spark-driver" {
			ctr = &driver.Spec.Containers[i]
		}
	}
	if ctr == nil {
		t.Fatalf("no container spark-driver (the template's) in the driver pod: %+v", driver.Spec.Containers)
	}
	for _, r := range []corev1.ResourceName{"sgx.intel.com/epc", "sgx.intel.com/enclave", "sgx.intel.com/provision"} {
		if _, ok := ctr.Resources.Limits[r]; !ok {
			t.Errorf("driver container has no limit %s: %v", r, ctr.Resources.Limits)
		}
	}
	secretVolumes := map[string]string{}
	for _, v := range driver.Spec.Volumes {
		if v.Secret != nil {
			secretVolumes[v.Secret.SecretName] = v.Name
		}
	}
	mounts := map[string]string{}
	for _, m := range ctr.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	for secret, path := range map[string]string{"ssl-keys": "/ppml/keys", "kubeconfig-secret": "/root/.kube", "spark-secret": "/ppml/spark-secret"} {
		if v, ok := secretVolumes[secret]; !ok || mounts[v] != path {
			t.Errorf("Secret %s not mounted at %s (volumes %v, mounts %v)", secret, path, secretVolumes, mounts)
		}
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range ctr.Env {
		env[e.Name] = e
	}
	for name, key := range map[string]string{"APP_ID": "app_id", "API_KEY": "api_key", "ATTESTATION_POLICYID": "policy_id"} {
		e := env[name]
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "kms-secret" || e.ValueFrom.SecretKeyRef.Key != key {
			t.Errorf("driver env %s is not kms-secret/%s: %+v", name, key, e)
		}
	}
	for _, name := range []string{"ATTESTATION", "ATTESTATION_URL", "ATTESTATION_TYPE", "QUOTE_TYPE", "SGX_ENABLED"} {
		if _, ok := env[name]; !ok {
			t.Errorf("driver env lacks %s", name)
		}
	}
	if e := env["SPARK_SSL_KEYSTORE_PW"]; e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "spark-secret" {
		t.Errorf("SPARK_SSL_KEYSTORE_PW (spark.ssl.*Password=${env:SPARK_SSL_KEYSTORE_PW}) is not taken from spark-secret: %+v", e)
	}
	if e := env["SPARK_AUTHENTICATE_SECRET"]; e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "spark-secret" {
		t.Errorf("SPARK_AUTHENTICATE_SECRET is not taken from spark-secret: %+v", e)
	}

	// No secret in what the API server holds or on the command line.
	podJSON, _ := json.Marshal(driver)
	cms, err := c.Clientset.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Spark's submission client copies the whole configuration, the
	// settings ppml keeps in its 0600 properties file included, into the
	// driver's ConfigMap (spark.properties). The test pins exactly which
	// secret settings are there (docs/compatibility.md), so that a new one,
	// or a fix, shows up here.
	var driverConf string
	leaked := map[string]bool{}
	for _, cm := range cms.Items {
		b, _ := json.Marshal(cm)
		props, isDriverConf := cm.Data["spark.properties"]
		if !isDriverConf {
			for what, secret := range map[string]string{"password": password, "--primary-key API key": apiKey, "kms-secret API key": enrolledKey} {
				if strings.Contains(string(b), secret) {
					t.Errorf("ConfigMap %s holds the %s", cm.Name, what)
				}
			}
			continue
		}
		driverConf = cm.Name
		for _, line := range strings.Split(props, "\n") {
			k, v, _ := strings.Cut(line, "=")
			if strings.Contains(v, password) || strings.Contains(v, apiKey) || strings.Contains(v, enrolledKey) {
				leaked[strings.TrimSpace(k)] = true
			} else if strings.Contains(line, password) || strings.Contains(line, apiKey) || strings.Contains(line, enrolledKey) {
				t.Errorf("driver ConfigMap %s: a secret outside a value: %q", cm.Name, k)
			}
		}
	}
	if driverConf == "" {
		t.Fatalf("found no driver ConfigMap (with spark.properties) among %d", len(cms.Items))
	}
	// The password is not among them (the pods read it from spark-secret);
	// BigDL reads the KMS API key only from its setting.
	knownGap := []string{"spark.bigdl.primaryKey.defaultKey.kms.apiKey"}
	var got []string
	for k := range leaked {
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(got, knownGap) {
		t.Errorf("secret settings in the driver ConfigMap %s: %v, the documented gap is %v (update docs/compatibility.md)", driverConf, got, knownGap)
	} else {
		t.Logf("KNOWN GAP (docs/compatibility.md): Spark 3.1.3 copies %v into the driver ConfigMap %s", got, driverConf)
	}
	if p := cmConf(cms.Items, "spark.ssl.keyStorePassword"); p != "${env:SPARK_SSL_KEYSTORE_PW}" {
		t.Errorf("driver ConfigMap: spark.ssl.keyStorePassword=%q, want the ${env:SPARK_SSL_KEYSTORE_PW} reference", p)
	}
	argv := strings.Join(args, " ")
	for what, secret := range map[string]string{"password": password, "kms-secret API key": enrolledKey} {
		if strings.Contains(string(podJSON), secret) {
			t.Errorf("the driver pod spec holds the %s", what)
		}
		if strings.Contains(argv, secret) || strings.Contains(string(out), secret) {
			t.Errorf("the %s is on ppml submit's command line or output", what)
		}
	}
	if strings.Contains(string(podJSON), apiKey) {
		t.Error("the driver pod spec holds the --primary-key API key")
	}
	if strings.Contains(string(out), apiKey) {
		t.Error("ppml submit printed the --primary-key API key")
	}
	if _, err := os.Stat(filepath.Join(work, "spark-secrets.properties")); !os.IsNotExist(err) {
		t.Error("the secret properties file was left behind")
	}
}

// cmConf is a setting of the driver ConfigMap's spark.properties (a Java
// properties file: ":" and "=" in values are escaped).
func cmConf(cms []corev1.ConfigMap, key string) string {
	for _, cm := range cms {
		for _, line := range strings.Split(cm.Data["spark.properties"], "\n") {
			if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == key {
				return strings.NewReplacer(`\:`, ":", `\=`, "=", `\\`, `\`).Replace(strings.TrimSpace(v))
			}
		}
	}
	return ""
}
