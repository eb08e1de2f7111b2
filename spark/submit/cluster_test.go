package submit

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/ppml-project/ppml/k8s/k8stest"
)

// TestTemplatesOnAPIServer creates every golden case's pod templates with
// a server-side dry run on a real kube-apiserver (validation and admission,
// nothing stored), and checks the cluster checks against missing and
// present Secrets.
func TestTemplatesOnAPIServer(t *testing.T) {
	c := k8stest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pods := c.Clientset.CoreV1().Pods("default")
	for name, o := range goldenCases() {
		p, err := Build(o)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Kubernetes {
			continue
		}
		for role, tpl := range map[string][]byte{"driver": p.DriverTemplate, "executor": p.ExecutorTemplate} {
			var pod corev1.Pod
			if err := yaml.UnmarshalStrict(tpl, &pod); err != nil {
				t.Fatalf("%s %s: %v", name, role, err)
			}
			pod.Name = "t-" + name + "-" + role
			// The default service account is created by the controller; wait
			// for it (admission needs it).
			var created *corev1.Pod
			for {
				created, err = pods.Create(ctx, &pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				if err == nil || !strings.Contains(err.Error(), "serviceaccount") || ctx.Err() != nil {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("%s %s template refused by the API server: %v\n%s", name, role, err, tpl)
			}
			if got := created.Spec.Containers[0].Name; got != DriverContainer && got != ExecutorContainer {
				t.Errorf("%s %s: container %s", name, role, got)
			}
		}
	}
	if _, err := pods.Get(ctx, "t-k8s-client-driver", metav1.GetOptions{}); err == nil {
		t.Fatal("dry run stored a pod")
	}

	// Cluster checks: nothing exists yet.
	o := goldenCases()["k8s-cluster-sgx"]
	p, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.CheckCluster(ctx, c.Clientset)
	for _, want := range []string{"Secret default/ssl-keys is missing", "Secret default/spark-secret is missing",
		"Secret default/kms-secret is missing", "Secret default/kubeconfig-secret is missing", "ServiceAccount default/spark is missing"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("cluster check: %v; want %q", err, want)
		}
	}
	sec := func(name string, data map[string][]byte) {
		if _, err := c.Clientset.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	sec(SSLKeysSecret, map[string][]byte{"keystore.jks": []byte("x")})
	sec(SparkSecret, map[string][]byte{"secret": []byte("x")})
	sec(KubeconfigSecret, map[string][]byte{"config": []byte("x")})
	sec(KMSSecret, map[string][]byte{"app_id": []byte("x"), "api_key": []byte("x")}) // no policy_id
	if _, err := c.Clientset.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "spark"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = p.CheckCluster(ctx, c.Clientset)
	if err == nil || !strings.Contains(err.Error(), `Secret default/kms-secret has no key "policy_id"`) || strings.Contains(err.Error(), "ssl-keys") {
		t.Fatalf("cluster check: %v", err)
	}
	kms, _ := c.Clientset.CoreV1().Secrets("default").Get(ctx, KMSSecret, metav1.GetOptions{})
	kms.Data["policy_id"] = []byte("p")
	if _, err := c.Clientset.CoreV1().Secrets("default").Update(ctx, kms, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if unchecked, err := p.CheckCluster(ctx, c.Clientset); err != nil || len(unchecked) > 0 {
		t.Fatalf("cluster check with everything present: %v (unchecked %v)", err, unchecked)
	}
}
