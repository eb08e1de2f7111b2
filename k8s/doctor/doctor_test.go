package doctor_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ppml-project/ppml/k8s/doctor"
	"github.com/ppml-project/ppml/k8s/k8stest"
	"github.com/ppml-project/ppml/k8s/kube"
	"github.com/ppml-project/ppml/k8s/material"
	"github.com/ppml-project/ppml/k8s/setup"
)

const password = "doctor-Test-pw"

func byName(checks []doctor.Check) map[string]doctor.Check {
	m := map[string]doctor.Check{}
	for _, c := range checks {
		m[c.Name] = c
	}
	return m
}

// expectFailed asserts exactly the named checks failed, each with a problem
// and a fix containing fixHint.
func expectFailed(t *testing.T, checks []doctor.Check, fixHint map[string]string) {
	t.Helper()
	for _, c := range checks {
		hint, want := fixHint[c.Name]
		switch {
		case want && c.OK:
			t.Errorf("%s passed, want failed", c.Name)
		case !want && !c.OK:
			t.Errorf("%s failed: %s (fix: %s)", c.Name, c.Problem, c.Fix)
		case want && (c.Problem == "" || !strings.Contains(c.Fix, hint)):
			t.Errorf("%s: problem %q, fix %q, want fix with %q", c.Name, c.Problem, c.Fix, hint)
		}
		delete(fixHint, c.Name)
	}
	for n := range fixHint {
		t.Errorf("no check %q", n)
	}
}

func TestDoctorAgainstAPIServer(t *testing.T) {
	c := k8stest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kc, err := kube.New(c.Config, "default")
	if err != nil {
		t.Fatal(err)
	}
	opts := doctor.Options{TEE: "none"}
	run := func() []doctor.Check { return doctor.ClusterChecks(ctx, kc, opts) }

	// Empty cluster: every prerequisite missing.
	expectFailed(t, run(), map[string]string{
		"SGX device plugin": "ppml k8s manifests --sgx-device-plugin", "secret ssl-keys": "ppml tls generate", "secret ssl-password": "ppml password generate",
		"secret spark-secret": "ppml password generate", "secret kms-secret": "ppml k8s setup", "secret kubeconfig-secret": "ppml k8s setup",
		"service account token": "ppml k8s setup", "RBAC: spark can create pods": "ppml k8s setup",
	})

	// Prepared as the README says.
	keys, err := material.GenerateKeys(material.KeysOptions{Password: []byte(password)})
	if err != nil {
		t.Fatal(err)
	}
	pf, err := material.GeneratePasswordFiles([]byte(password), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*corev1.Secret{keys.Secret(""), pf.Secret(""), material.SparkSecretFor([]byte(password), "")} {
		if _, err := kc.ApplySecret(ctx, s, false); err != nil {
			t.Fatal(err)
		}
	}
	setupOpts := setup.Options{KMS: setup.KMSCredentials{AppID: "a", APIKey: "k", PolicyID: "p"}}
	if _, err := setup.Setup(ctx, kc, setupOpts); err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "sgx-node-1"}}
	if node, err = kc.Clientset.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expectFailed(t, run(), map[string]string{"SGX device plugin": "--sgx-device-plugin"})
	node.Status.Capacity = corev1.ResourceList{"sgx.intel.com/epc": resource.MustParse("64Gi"), "sgx.intel.com/enclave": resource.MustParse("20"), "sgx.intel.com/provision": resource.MustParse("20")}
	node.Status.Allocatable = node.Status.Capacity
	if _, err := kc.Clientset.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	all := run()
	expectFailed(t, all, map[string]string{})
	if byName(all)["one password"].Name == "" {
		t.Error("no password consistency check")
	}

	secrets := kc.Clientset.CoreV1().Secrets("default")
	repair := func() {
		t.Helper()
		if _, err := setup.Setup(ctx, kc, setupOpts); err != nil {
			t.Fatal(err)
		}
		expectFailed(t, run(), map[string]string{})
	}

	// A Secret deleted.
	if err := secrets.Delete(ctx, "kubeconfig-secret", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expectFailed(t, run(), map[string]string{"secret kubeconfig-secret": "ppml k8s setup", "service account token": "ppml k8s setup"})
	repair()

	// A key missing.
	s, _ := secrets.Get(ctx, "kms-secret", metav1.GetOptions{})
	delete(s.Data, "api_key")
	if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := run()
	expectFailed(t, got, map[string]string{"secret kms-secret": "--kms-api-key-file"})
	if p := byName(got)["secret kms-secret"].Problem; !strings.Contains(p, "lacks key(s) api_key") {
		t.Errorf("problem: %s", p)
	}
	repair()

	// spark-secret with another password than ssl-password.
	if _, err := kc.ApplySecret(ctx, material.SparkSecretFor([]byte("another-pw"), ""), false); err != nil {
		t.Fatal(err)
	}
	expectFailed(t, run(), map[string]string{"one password": "ppml password generate"})
	if _, err := kc.ApplySecret(ctx, material.SparkSecretFor([]byte(password), ""), false); err != nil {
		t.Fatal(err)
	}

	// The service account recreated: the kubeconfig's bound token is dead.
	if err := kc.Clientset.CoreV1().ServiceAccounts("default").Delete(ctx, "spark", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.Clientset.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "spark"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expectFailed(t, run(), map[string]string{"service account token": "ppml k8s setup"})
	repair()
	if d := byName(run())["service account token"].Detail; !strings.Contains(d, "expires") {
		t.Errorf("token detail: %q", d)
	}

	// The binding removed.
	if err := kc.Clientset.RbacV1().RoleBindings("default").Delete(ctx, setup.DefaultBinding, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expectFailed(t, run(), map[string]string{"RBAC: spark can create pods": "ppml k8s setup"})
	repair()

	// Upstream's RBAC: spark reads every Secret; doctor names the fix.
	legacy := setupOpts
	legacy.LegacyRBAC = true
	if _, err := setup.Setup(ctx, kc, legacy); err != nil {
		t.Fatal(err)
	}
	got = run()
	expectFailed(t, got, map[string]string{"RBAC: spark cannot read Secrets": "without --legacy-rbac"})
	if p := byName(got)["RBAC: spark cannot read Secrets"].Problem; !strings.Contains(p, "get the KMS root key Secret default/ppml-root-key") || !strings.Contains(p, "list Secrets in every namespace") {
		t.Errorf("problem: %s", p)
	}
	if d := byName(got)["service account token"].Detail; !strings.Contains(d, "non-expiring") {
		t.Errorf("legacy token detail: %q", d)
	}
	repair()

	// A RoleBinding elsewhere that lets spark read the root key.
	if _, err := kc.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ppml"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "oops"}, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "admin"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "spark", Namespace: "default"}}}
	if _, err := kc.Clientset.RbacV1().RoleBindings("ppml").Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	inPPML := opts
	inPPML.KMSNamespace = "ppml"
	got = doctor.ClusterChecks(ctx, kc, inPPML)
	expectFailed(t, got, map[string]string{"RBAC: spark cannot read Secrets": "rolebindings,clusterrolebindings"})
	if p := byName(got)["RBAC: spark cannot read Secrets"].Problem; !strings.Contains(p, "ppml/ppml-root-key") {
		t.Errorf("problem: %s", p)
	}
	if err := kc.Clientset.RbacV1().RoleBindings("ppml").Delete(ctx, "oops", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expectFailed(t, doctor.ClusterChecks(ctx, kc, inPPML), map[string]string{})

	// The KMS root key in the job namespace: creating a pod there mounts it.
	if _, err := kc.ApplySecret(ctx, material.NewSecret("ppml-root-key", "default", map[string][]byte{"root.key": []byte("x")}), false); err != nil {
		t.Fatal(err)
	}
	expectFailed(t, run(), map[string]string{"RBAC: spark cannot read Secrets": "its own namespace"})
	if err := secrets.Delete(ctx, "ppml-root-key", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// The cluster unreachable.
	cfg := *c.Config
	cfg.Host = "https://127.0.0.1:1"
	cfg.Timeout = 2 * time.Second
	dead, err := kube.New(&cfg, "default")
	if err != nil {
		t.Fatal(err)
	}
	got = doctor.ClusterChecks(ctx, dead, opts)
	if len(got) != 1 || got[0].OK || got[0].Name != "cluster reachable" {
		t.Fatalf("unreachable: %+v", got)
	}
}

func TestDoctorServices(t *testing.T) {
	var sealed, asMissing atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if sealed.Load() {
			http.Error(w, "sealed", http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /v1/operator/status", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"sealed": sealed.Load(), "initialized": true, "root_key_provider": "shamir"})
	})
	mux.HandleFunc("GET /v1/attestation/jwks", func(w http.ResponseWriter, r *http.Request) {
		if asMissing.Load() {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"keys":[]}`))
	})
	mux.HandleFunc("GET /sgx/certification/v4/rootcacrl", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("crl")) })
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	o := doctor.Options{KMSURL: srv.URL, CAFile: ca, PCCSURL: srv.URL, PCCSCAFile: ca}

	expectFailed(t, doctor.ServiceChecks(ctx, o), map[string]string{})

	noCA := o
	noCA.CAFile, noCA.PCCSCAFile = "", ""
	got := doctor.ServiceChecks(ctx, noCA)
	expectFailed(t, got, map[string]string{"KMS reachable (TLS valid)": "--ca-file", "PCCS reachable": "--pccs-ca-file"})
	if p := byName(got)["KMS reachable (TLS valid)"].Problem; !strings.Contains(p, "unknown authority") {
		t.Errorf("TLS problem: %s", p)
	}

	sealed.Store(true)
	expectFailed(t, doctor.ServiceChecks(ctx, o), map[string]string{"KMS initialized and unsealed": "ppml operator unseal", "KMS ready": "unseal"})
	sealed.Store(false)
	asMissing.Store(true)
	expectFailed(t, doctor.ServiceChecks(ctx, o), map[string]string{"AS reachable": "--as-url"})
	asMissing.Store(false)

	down := o
	down.KMSURL = "https://127.0.0.1:1"
	down.ASURL = srv.URL
	expectFailed(t, doctor.ServiceChecks(ctx, down), map[string]string{"KMS reachable (TLS valid)": "kubectl"})

	got = doctor.ServiceChecks(ctx, doctor.Options{})
	if len(got) != 2 || !got[0].Skipped || !got[1].Skipped {
		t.Errorf("unconfigured: %+v", got)
	}
}

func TestDoctorDevices(t *testing.T) {
	root := t.TempDir()
	mk := func(rel, content string) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// No TEE: skipped.
	got := doctor.DeviceChecks(doctor.Options{DevRoot: root})
	if len(got) != 1 || !got[0].Skipped {
		t.Fatalf("no TEE: %+v", got)
	}
	// An SGX CPU without the provisioning device.
	mk("proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu vme sgx sgx_lc\n")
	mk("dev/sgx_enclave", "")
	expectFailed(t, doctor.DeviceChecks(doctor.Options{DevRoot: root}), map[string]string{"/dev/sgx_provision": "BIOS"})
	mk("dev/sgx_provision", "")
	expectFailed(t, doctor.DeviceChecks(doctor.Options{DevRoot: root}), map[string]string{})
	// Asked for TDX on a machine without it.
	expectFailed(t, doctor.DeviceChecks(doctor.Options{DevRoot: root, TEE: "tdx"}), map[string]string{"/dev/tdx_guest": "modprobe tdx_guest"})
	mk("dev/tdx_guest", "")
	expectFailed(t, doctor.DeviceChecks(doctor.Options{DevRoot: root, TEE: "tdx"}), map[string]string{})
	expectFailed(t, doctor.DeviceChecks(doctor.Options{DevRoot: root, TEE: "bogus"}), map[string]string{"local TEE devices": "--tee auto"})
}
