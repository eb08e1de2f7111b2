// Package setuptest helps cluster tests of the setup and doctor commands.
package setuptest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ppml-project/ppml/k8s/k8stest"
)

// StartAggregation runs kube-controller-manager's clusterrole-aggregation
// controller against c (k8stest runs only the service-account
// controllers), so that the aggregated ClusterRole edit gets its rules as in
// a real cluster, and waits until it has them.
func StartAggregation(t testing.TB, c *k8stest.Cluster) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "kcm-aggregation.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(c.Assets, "kube-controller-manager"),
		"--kubeconfig="+c.Kubeconfig, "--controllers=clusterrole-aggregation",
		"--leader-elect=false", "--secure-port=0")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kube-controller-manager (clusterrole-aggregation): %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logFile.Close()
	})
	err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		r, err := c.Clientset.RbacV1().ClusterRoles().Get(ctx, "edit", metav1.GetOptions{})
		return err == nil && len(r.Rules) > 0, nil
	})
	if err != nil {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("ClusterRole edit got no rules from the aggregation controller: %v\n%s", err, b)
	}
}
