package setup_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ppml-project/ppml/k8s/k8stest"
	"github.com/ppml-project/ppml/k8s/kube"
	"github.com/ppml-project/ppml/k8s/material"
	"github.com/ppml-project/ppml/k8s/setup"
)

const password = "setup-Test-pw"

func results(r setup.Report) map[string]kube.Result {
	m := map[string]kube.Result{}
	for _, it := range r.Items {
		m[it.Kind+"/"+it.Name] = it.Result
	}
	return m
}

func TestSetupAgainstAPIServer(t *testing.T) {
	c := k8stest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kc, err := kube.New(c.Config, "default")
	if err != nil {
		t.Fatal(err)
	}
	opts := setup.Options{Password: []byte(password), KMS: setup.KMSCredentials{AppID: "app-1", APIKey: "key-secret-1", PolicyID: "policy-1"}}

	// Precise errors before anything is created.
	if _, err := setup.Setup(ctx, kc, setup.Options{KMS: setup.KMSCredentials{AppID: "x"}}); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("half credentials: %v", err)
	}
	if _, err := setup.Setup(ctx, kc, setup.Options{KMS: opts.KMS}); err == nil || !strings.Contains(err.Error(), "ppml password generate") {
		t.Fatalf("no password: %v", err)
	}
	if _, err := setup.Setup(ctx, kc, setup.Options{Password: []byte(password)}); err == nil || !strings.Contains(err.Error(), "--kms-app-id") {
		t.Fatalf("no KMS credentials: %v", err)
	}
	if _, err := kc.Clientset.CoreV1().ServiceAccounts("default").Get(ctx, "spark", metav1.GetOptions{}); err == nil {
		t.Fatal("a failed setup created the service account")
	}

	// From empty.
	rep, err := setup.Setup(ctx, kc, opts)
	if err != nil {
		t.Fatal(err)
	}
	res := results(rep)
	for _, k := range []string{"ServiceAccount/spark", "ClusterRoleBinding/spark-role", "Secret/spark-service-account-token", "Secret/spark-secret", "Secret/kms-secret", "Secret/kubeconfig-secret"} {
		if res[k] != kube.Created {
			t.Errorf("first run: %s %q, want created", k, res[k])
		}
	}
	if !rep.Changed() {
		t.Error("first run reports no change")
	}

	// Second run: nothing changes, also without password and credentials
	// (kept), and the file written once is unchanged.
	out := filepath.Join(t.TempDir(), "config")
	if r, err := setup.WriteKubeconfig(out, rep.Kubeconfig); err != nil || r != kube.Created {
		t.Fatalf("write kubeconfig: %v %v", r, err)
	}
	for _, o := range []setup.Options{opts, {}} {
		rep2, err := setup.Setup(ctx, kc, o)
		if err != nil {
			t.Fatal(err)
		}
		if rep2.Changed() {
			t.Errorf("second run changed something: %+v", rep2.Items)
		}
		if r, err := setup.WriteKubeconfig(out, rep2.Kubeconfig); err != nil || r != kube.Unchanged {
			t.Errorf("rewrite kubeconfig: %v %v", r, err)
		}
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode %v", st.Mode())
	}

	// The Secrets hold what BigDL expects.
	s, err := kc.Clientset.CoreV1().Secrets("default").Get(ctx, "kms-secret", metav1.GetOptions{})
	if err != nil || string(s.Data["app_id"]) != "app-1" || string(s.Data["api_key"]) != "key-secret-1" || string(s.Data["policy_id"]) != "policy-1" {
		t.Fatalf("kms-secret: %v %v", s.Data, err)
	}
	s, _ = kc.Clientset.CoreV1().Secrets("default").Get(ctx, "spark-secret", metav1.GetOptions{})
	if string(s.Data["secret"]) != password {
		t.Fatal("spark-secret does not hold the password")
	}
	s, _ = kc.Clientset.CoreV1().Secrets("default").Get(ctx, "kubeconfig-secret", metav1.GetOptions{})
	cfg, err := clientcmd.Load(s.Data["config"])
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CurrentContext != "spark-context" || cfg.Contexts["spark-context"].AuthInfo != "spark-user" || len(cfg.Clusters) != 1 || len(cfg.AuthInfos) != 1 || len(cfg.Contexts) != 1 {
		t.Fatalf("kubeconfig: %+v", cfg)
	}

	// The kubeconfig authenticates as the service account and may create a pod.
	rc, err := clientcmd.RESTConfigFromKubeConfig(s.Data["config"])
	if err != nil {
		t.Fatal(err)
	}
	sa, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	who, err := sa.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || who.Status.UserInfo.Username != "system:serviceaccount:default:spark" {
		t.Fatalf("whoami: %v %v", who, err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "spark-driver-test"}, Spec: corev1.PodSpec{
		ServiceAccountName: "spark", Containers: []corev1.Container{{Name: "driver", Image: "intelanalytics/bigdl-ppml-trusted-bigdata-gramine-reference-8g:2.5.0-SNAPSHOT"}}}}
	if _, err := sa.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("create pod as spark (server dry run): %v", err)
	}

	// Repairs: a deleted token Secret is recreated and kubeconfig-secret
	// follows the new token; a policy id alone is replaced.
	if err := kc.Clientset.CoreV1().Secrets("default").Delete(ctx, "spark-service-account-token", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rep3, err := setup.Setup(ctx, kc, setup.Options{KMS: setup.KMSCredentials{PolicyID: "policy-2"}})
	if err != nil {
		t.Fatal(err)
	}
	res = results(rep3)
	if res["Secret/spark-service-account-token"] != kube.Created || res["Secret/kubeconfig-secret"] != kube.Updated || res["Secret/kms-secret"] != kube.Updated || res["Secret/spark-secret"] != kube.Unchanged {
		t.Fatalf("repair: %+v", rep3.Items)
	}

	// A binding to another role is reported, not replaced.
	other := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "spark-view"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"}}
	if _, err := kc.Clientset.RbacV1().ClusterRoleBindings().Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Setup(ctx, kc, setup.Options{Binding: "spark-view"}); err == nil || !strings.Contains(err.Error(), "kubectl delete clusterrolebinding spark-view") {
		t.Fatalf("foreign binding: %v", err)
	}

	// Another namespace: created; the password comes from its ssl-password;
	// the KMS credentials are enrolled; the binding gains a subject.
	pf, err := material.GeneratePasswordFiles([]byte(password), nil)
	if err != nil {
		t.Fatal(err)
	}
	enrolled := 0
	jobs := setup.Options{Namespace: "jobs", Enroll: func(context.Context) (string, string, error) {
		enrolled++
		return "app-2", "key-2", nil
	}}
	if _, err := kc.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "jobs"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.ApplySecret(ctx, pf.Secret("jobs"), false); err != nil {
		t.Fatal(err)
	}
	rep4, err := setup.Setup(ctx, kc, jobs)
	if err != nil {
		t.Fatal(err)
	}
	if results(rep4)["ClusterRoleBinding/spark-role"] != kube.Updated || enrolled != 1 {
		t.Fatalf("jobs: %+v, enrolled %d", rep4.Items, enrolled)
	}
	s, _ = kc.Clientset.CoreV1().Secrets("jobs").Get(ctx, "spark-secret", metav1.GetOptions{})
	if string(s.Data["secret"]) != password {
		t.Fatal("spark-secret in jobs: not the password of ssl-password")
	}
	if rep5, err := setup.Setup(ctx, kc, jobs); err != nil || rep5.Changed() || enrolled != 1 {
		t.Fatalf("jobs again: %+v %v (enrolled %d)", rep5.Items, err, enrolled)
	}

	// --dry-run manifests: no secret values, and the API server admits them.
	m, err := setup.Manifests(setup.Options{Namespace: "dry", KMS: setup.KMSCredentials{AppID: "app-3", APIKey: "key-secret-3"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(m), "key-secret-3") {
		t.Fatal("manifests show the API key")
	}
	if _, err := kc.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dry"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if out, err := c.Kubectl(t, m, "apply", "--dry-run=server", "-f", "-"); err != nil || strings.Count(string(out), "server dry run") != 6 {
		t.Fatalf("dry-run manifests: %v\n%s", err, out)
	}
}
