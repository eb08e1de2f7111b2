package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ppml-project/ppml/k8s/k8stest"
)

// runPPML runs the built binary and returns stdout, stderr and the exit code.
func runPPML(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(ppmlBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

type doctorJSON struct {
	OK     bool `json:"ok"`
	Failed int  `json:"failed"`
	Checks []struct {
		Name, Problem, Fix string
		OK                 bool
	} `json:"checks"`
}

func failedChecks(t *testing.T, out string) map[string]string {
	t.Helper()
	var d doctorJSON
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("doctor JSON: %v\n%s", err, out)
	}
	m := map[string]string{}
	for _, c := range d.Checks {
		if !c.OK {
			m[c.Name] = c.Problem + " | " + c.Fix
		}
	}
	return m
}

// passedCheck reports whether doctor's JSON output has the named check, passed.
func passedCheck(t *testing.T, out, name string) bool {
	t.Helper()
	var d doctorJSON
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("doctor JSON: %v\n%s", err, out)
	}
	for _, c := range d.Checks {
		if c.Name == name {
			return c.OK
		}
	}
	return false
}

// closedPortURL is an https URL on a loopback port nothing listens on.
func closedPortURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "https://" + addr
}

func TestK8sSetupAndDoctorCLI(t *testing.T) {
	c := k8stest.Start(t)
	ctx := context.Background()
	dataDir := t.TempDir()
	_, url := startServe(t, dataDir)
	ca := filepath.Join(dataDir, "tls", "server.crt")
	admin := filepath.Join(dataDir, "admin.token")
	kcfg := c.Kubeconfig
	tmp := t.TempDir()
	pw := filepath.Join(tmp, "pw")
	os.WriteFile(pw, []byte("cli-k8s-Password\n"), 0o600)

	// The page, step by step.
	for _, args := range [][]string{
		{"tls", "generate", "--out", filepath.Join(tmp, "keys"), "--password-file", pw, "--dns", "ppml", "--apply", "--kubeconfig", kcfg},
		{"password", "generate", "--out", filepath.Join(tmp, "password"), "--password-file", pw, "--apply", "--kubeconfig", kcfg},
	} {
		if out, errs, code := runPPML(t, "", args...); code != 0 {
			t.Fatalf("%v: %s %s", args, out, errs)
		}
	}
	out, errs, code := runPPML(t, "", "doctor", "--kubeconfig", kcfg, "--tee", "none", "--output", "json")
	if code != 1 {
		t.Fatalf("doctor before setup: exit %d\n%s\n%s", code, out, errs)
	}
	f := failedChecks(t, out)
	for _, n := range []string{"secret kms-secret", "secret kubeconfig-secret", "service account token", "RBAC: spark can create pods", "SGX device plugin"} {
		if _, ok := f[n]; !ok {
			t.Errorf("doctor before setup: %s not failed (%v)", n, f)
		}
	}

	kout := filepath.Join(tmp, "spark.kubeconfig")
	setupArgs := []string{"k8s", "setup", "--kubeconfig", kcfg, "--kms-url", url, "--ca-file", ca, "--admin-token-file", admin, "--kms-policy-id", "policy-1", "--kubeconfig-out", kout}
	out, errs, code = runPPML(t, "", setupArgs...)
	if code != 0 || !strings.Contains(out, "secret/kms-secret created (enrolled app ") || !strings.Contains(out, "serviceaccount/spark created") || !strings.Contains(out, "file/"+kout+" created") ||
		!strings.Contains(out, "role/spark-role created") || !strings.Contains(out, "the token of the kubeconfig expires ") || strings.Contains(errs, "warning") {
		t.Fatalf("setup: exit %d\n%s\n%s", code, out, errs)
	}
	s, err := c.Clientset.CoreV1().Secrets("default").Get(ctx, "kms-secret", metav1.GetOptions{})
	if err != nil || len(s.Data["api_key"]) == 0 {
		t.Fatal(err)
	}
	if strings.Contains(out+errs, string(s.Data["api_key"])) {
		t.Fatal("setup printed the API key")
	}
	if st, err := os.Stat(kout); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("kubeconfig-out: %v", err)
	}
	out, errs, code = runPPML(t, "", append(setupArgs, "--output", "json")...)
	if code != 0 || !strings.Contains(out, `"changed": false`) {
		t.Fatalf("second setup: exit %d\n%s\n%s", code, out, errs)
	}
	out, _, _ = runPPML(t, "", setupArgs...)
	if !strings.Contains(out, "nothing to do") {
		t.Fatalf("third setup: %s", out)
	}

	// The written kubeconfig works with kubectl as the service account.
	kc := exec.Command(filepath.Join(c.Assets, "kubectl"), "--kubeconfig", kout, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
	if b, err := kc.CombinedOutput(); err != nil || string(b) != "system:serviceaccount:default:spark" {
		t.Fatalf("kubectl auth whoami: %v %s", err, b)
	}
	kc = exec.Command(filepath.Join(c.Assets, "kubectl"), "--kubeconfig", kout, "run", "spark-driver", "--image=busybox", "--dry-run=server")
	if b, err := kc.CombinedOutput(); err != nil || !strings.Contains(string(b), "created (server dry run)") {
		t.Fatalf("kubectl run as spark: %v %s", err, b)
	}

	kc = exec.Command(filepath.Join(c.Assets, "kubectl"), "--kubeconfig", kout, "get", "secrets", "-A")
	if b, err := kc.CombinedOutput(); err == nil || !strings.Contains(string(b), "Forbidden") {
		t.Fatalf("kubectl get secrets as spark: %v %s", err, b)
	}
	// --legacy-rbac says why it is dangerous (dry run: nothing applied).
	if out, errs, code := runPPML(t, "", "k8s", "setup", "--dry-run", "--legacy-rbac", "--namespace", "x"); code != 0 || !strings.Contains(errs, "warning: --legacy-rbac") || !strings.Contains(out, "kind: ClusterRoleBinding") {
		t.Fatalf("legacy dry run: %d %s %s", code, out, errs)
	}

	// Doctor: only the device plugin is missing (no nodes here); KMS fine.
	doctorArgs := []string{"doctor", "--kubeconfig", kcfg, "--kms-url", url, "--ca-file", ca, "--tee", "none"}
	out, errs, code = runPPML(t, "", append(doctorArgs, "--output", "json")...)
	f = failedChecks(t, out)
	if code != 1 || len(f) != 1 || f["SGX device plugin"] == "" {
		t.Fatalf("doctor after setup: exit %d, failed %v\n%s", code, f, errs)
	}
	if !passedCheck(t, out, "AS reachable") {
		t.Fatalf("doctor after setup: the real server's Attestation Service not found reachable:\n%s", out)
	}
	out, _, _ = runPPML(t, "", doctorArgs...)
	if !strings.Contains(out, "FAIL  SGX device plugin") || !strings.Contains(out, "fix: deploy the Intel SGX device plugin") || !strings.Contains(out, "ok    KMS initialized and unsealed") ||
		!strings.Contains(out, "ok    AS reachable") {
		t.Fatalf("doctor text:\n%s", out)
	}
	// An Attestation Service URL where nothing listens is a failed check
	// that names the service.
	dead := closedPortURL(t)
	out, _, _ = runPPML(t, "", "doctor", "--no-cluster", "--kms-url", url, "--as-url", dead, "--ca-file", ca, "--tee", "none", "--output", "json")
	if p := failedChecks(t, out)["AS reachable"]; !strings.Contains(p, "Attestation Service") || !strings.Contains(p, dead) {
		t.Fatalf("doctor with a dead --as-url: %s", out)
	}
	// Without the CA the TLS problem and its fix are named.
	out, _, _ = runPPML(t, "", "doctor", "--no-cluster", "--kms-url", url, "--ca-file", "", "--tee", "none", "--output", "json")
	if p := failedChecks(t, out)["KMS reachable (TLS valid)"]; !strings.Contains(p, "unknown authority") || !strings.Contains(p, "--ca-file") {
		t.Fatalf("doctor without CA: %s", out)
	}
	// A deleted Secret is found.
	if err := c.Clientset.CoreV1().Secrets("default").Delete(ctx, "spark-secret", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	out, _, _ = runPPML(t, "", append(doctorArgs, "--output", "json")...)
	if p := failedChecks(t, out)["secret spark-secret"]; !strings.Contains(p, "ppml password generate") {
		t.Fatalf("doctor after deleting spark-secret: %s", out)
	}
	// setup recovers it from ssl-password.
	if out, errs, code = runPPML(t, "", setupArgs...); code != 0 || !strings.Contains(out, "secret/spark-secret created (password recovered from ssl-password)") {
		t.Fatalf("setup repair: %s %s", out, errs)
	}

	// Bad input.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"k8s", "setup", "--kubeconfig", kcfg, "--kms-app-id", "x"}, "go together"},
		{[]string{"k8s", "setup", "--kubeconfig", kcfg, "--kms-app-id", "x", "--kms-api-key-file", "/nonexistent"}, "--kms-api-key-file"},
		{[]string{"k8s", "setup", "--dry-run", "--kubeconfig-out", "x"}, "--kubeconfig-out cannot"},
		{[]string{"k8s", "manifests", "--replicas", "3"}, "--postgres"},
		{[]string{"doctor", "--output", "yaml"}, "want text or json"},
		{[]string{"doctor", "--no-cluster", "--tee", "sgx", "--dev-root", tmp}, "sgx_enclave"},
	} {
		out, errs, code := runPPML(t, "", tc.args...)
		if code == 0 || !strings.Contains(out+errs, tc.want) {
			t.Errorf("%v: exit %d, want %q in\n%s%s", tc.args, code, tc.want, out, errs)
		}
	}

	// Manifests pass server-side dry-run.
	for _, args := range [][]string{{"k8s", "manifests"}, {"k8s", "manifests", "--postgres", "--sgx"}, {"k8s", "manifests", "--secrets"},
		{"k8s", "setup", "--dry-run", "--kubeconfig", kcfg, "--namespace", "default"}} {
		out, errs, code := runPPML(t, "", args...)
		if code != 0 {
			t.Fatalf("%v: %s", args, errs)
		}
		if b, err := c.Kubectl(t, []byte(out), "apply", "--dry-run=server", "-f", "-"); err != nil {
			t.Fatalf("%v: dry-run: %v %s", args, err, b)
		}
	}
}
