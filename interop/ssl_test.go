package interop

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSparkSSLPasswordFromEnv: the SSL settings ppml submit gives cluster-
// mode pods (spark.ssl.*Password=${env:SPARK_SSL_KEYSTORE_PW}, the password
// itself only in the pod's environment from spark-secret) work with Spark
// 3.1.3 and the key store ppml keys generate writes: the driver's SSL
// servers start with the right password in the variable and fail with a
// wrong one. (Local mode: the test cluster has no kubelet to run a pod.)
func TestSparkSSLPasswordFromEnv(t *testing.T) {
	dir := t.TempDir()
	const password = "Interop-SSL-pw-3"
	pwFile := filepath.Join(dir, "pw.txt")
	writeFile0600(t, pwFile, password)
	keys := filepath.Join(dir, "keys")
	if out, err := exec.Command(ppmlBin, "keys", "generate", "--password-file", pwFile, "--dns", "localhost", "--out", keys).CombinedOutput(); err != nil {
		t.Fatalf("ppml keys generate: %v\n%s", err, out)
	}
	props := filepath.Join(dir, "spark.properties")
	writeFile0600(t, props, strings.Join([]string{
		"spark.ssl.enabled=true",
		"spark.ssl.port=0",
		"spark.ssl.keyStore=" + filepath.Join(keys, "keystore.jks"),
		"spark.ssl.trustStore=" + filepath.Join(keys, "keystore.jks"),
		"spark.ssl.keyStoreType=JKS",
		"spark.ssl.trustStoreType=JKS",
		"spark.ssl.keyPassword=${env:SPARK_SSL_KEYSTORE_PW}",
		"spark.ssl.keyStorePassword=${env:SPARK_SSL_KEYSTORE_PW}",
		"spark.ssl.trustStorePassword=${env:SPARK_SSL_KEYSTORE_PW}",
		"spark.ui.enabled=true",
		"spark.ui.port=0",
		"",
	}, "\n"))
	csv := filepath.Join(dir, "people.csv")
	if err := os.WriteFile(csv, []byte("name,age,job\nalice,30,Developer\nbob,50,Developer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--master", "local[1]", "--properties-file", props, "--class", "ppml.interop.SimpleQuery", driverJar,
		"csv", csv, "csv", filepath.Join(dir, "out")}
	log := sparkSubmit(t, []string{"SPARK_SSL_KEYSTORE_PW=" + password}, args...)
	if !strings.Contains(log, "ppml-interop: developers=1\n") {
		t.Fatalf("query did not run:\n%s", tailString([]byte(log), 3000))
	}
	if !strings.Contains(log, "https://") && !strings.Contains(log, "SSL") {
		t.Errorf("no sign of the SSL UI in Spark's log:\n%s", tailString([]byte(log), 3000))
	}

	// A wrong password in the variable: the key store does not open.
	cmd := exec.Command(engines.SparkHome+"/bin/spark-submit", append(args[:len(args)-1], filepath.Join(dir, "out2"))...)
	cmd.Env = append(os.Environ(), "JAVA_HOME="+engines.JavaHome, "SPARK_HOME="+engines.SparkHome, "SPARK_SSL_KEYSTORE_PW=wrong-"+password)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("Spark started with a wrong key-store password:\n%s", tailString(out, 2000))
	}
	if !strings.Contains(string(out), "password was incorrect") && !strings.Contains(string(out), "Keystore was tampered") {
		t.Errorf("wrong password failed otherwise:\n%s", tailString(out, 3000))
	}
}
