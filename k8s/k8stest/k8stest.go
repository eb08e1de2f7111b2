// Package k8stest starts a real Kubernetes control plane for tests:
// etcd and kube-apiserver through controller-runtime's envtest, plus
// kube-controller-manager running the service-account, token and
// clusterrole-aggregation controllers
// (which fill kubernetes.io/service-account-token Secrets).
//
// The binaries come from $KUBEBUILDER_ASSETS, a directory with etcd,
// kube-apiserver, kube-controller-manager and kubectl, built by
// hack/k8sbins/build.sh:
//
//	KUBEBUILDER_ASSETS=$(hack/k8sbins/build.sh) go test ./k8s/...
//
// Without KUBEBUILDER_ASSETS the tests fail: the cluster tests are never
// silently skipped (scripts/test.sh sets it).
package k8stest

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// AssetsEnv is the variable naming the directory with the binaries.
const AssetsEnv = "KUBEBUILDER_ASSETS"

// Cluster is a running test control plane.
type Cluster struct {
	// Config is an admin (system:masters) client configuration.
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file with the same
	// credentials, for kubectl and code that loads kubeconfig files.
	Kubeconfig string
	// Assets is the directory holding the binaries.
	Assets string
	// Clientset is a client for Config.
	Clientset kubernetes.Interface
}

// Assets returns $KUBEBUILDER_ASSETS after checking the binaries are there.
// It fails the test when the variable is unset.
func Assets(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(AssetsEnv)
	if dir == "" {
		t.Fatal(AssetsEnv + " is not set: no Kubernetes binaries for the cluster tests " +
			"(scripts/test.sh sets it; by hand: export " + AssetsEnv + "=$(hack/k8sbins/build.sh))")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl"} {
		if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			t.Fatalf("%s=%s: %s is missing or not executable (rebuild with hack/k8sbins/build.sh)", AssetsEnv, dir, b)
		}
	}
	return dir
}

// Start starts etcd, kube-apiserver and kube-controller-manager and stops
// them when the test ends. Each call starts a fresh cluster (~3-5 s).
func Start(t testing.TB) *Cluster {
	t.Helper()
	assets := Assets(t)
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest (etcd + kube-apiserver from %s): %v", assets, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	tmp := t.TempDir()

	admin, err := env.AddUser(envtest.User{Name: "ppml-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("envtest admin user: %v", err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		t.Fatalf("envtest admin kubeconfig: %v", err)
	}
	kubeconfig := filepath.Join(tmp, "admin.kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}

	kcmUser, err := env.AddUser(envtest.User{Name: "kube-controller-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("envtest kcm user: %v", err)
	}
	kcmKC, err := kcmUser.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kcmPath := filepath.Join(tmp, "kcm.kubeconfig")
	caPath := filepath.Join(tmp, "ca.crt")
	if err := os.WriteFile(kcmPath, kcmKC, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caPath, cfg.CAData, 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(tmp, "kube-controller-manager.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	kcm := exec.Command(filepath.Join(assets, "kube-controller-manager"),
		"--kubeconfig="+kcmPath,
		"--controllers=serviceaccount-token,serviceaccount,clusterrole-aggregation",
		"--service-account-private-key-file="+filepath.Join(env.ControlPlane.APIServer.CertDir, "sa-signer.key"),
		"--root-ca-file="+caPath,
		"--leader-elect=false", "--use-service-account-credentials=false",
		"--secure-port=0")
	kcm.Stdout, kcm.Stderr = logFile, logFile
	if err := kcm.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start kube-controller-manager: %v", err)
	}
	t.Cleanup(func() {
		_ = kcm.Process.Kill()
		_ = kcm.Wait()
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("kube-controller-manager log (tail):\n%s", tail(b, 4000))
			}
		}
	})

	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// As in a real cluster, the aggregated ClusterRole edit gets its rules
	// from the clusterrole-aggregation controller; wait for them.
	err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		r, err := cs.RbacV1().ClusterRoles().Get(ctx, "edit", metav1.GetOptions{})
		return err == nil && len(r.Rules) > 0, nil
	})
	if err != nil {
		t.Fatalf("ClusterRole edit got no rules from kube-controller-manager's aggregation controller: %v", err)
	}
	return &Cluster{Config: cfg, Kubeconfig: kubeconfig, Assets: assets, Clientset: cs}
}

// Kubectl runs the kubectl from the assets against the cluster and returns
// its combined output.
func (c *Cluster) Kubectl(t testing.TB, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.Assets, "kubectl"), append([]string{"--kubeconfig=" + c.Kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Logf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out, err
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
