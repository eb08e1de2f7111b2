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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
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
	for _, k := range []string{"ServiceAccount/spark", "Role/spark-role", "RoleBinding/spark-role", "Token/spark", "Secret/spark-secret", "Secret/kms-secret", "Secret/kubeconfig-secret"} {
		if res[k] != kube.Created {
			t.Errorf("first run: %s %q, want created", k, res[k])
		}
	}
	if !rep.Changed() {
		t.Error("first run reports no change")
	}
	if d := time.Until(rep.TokenExpires); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("token expires %v, want in about 24h", rep.TokenExpires)
	}
	if len(rep.Warnings) != 0 {
		t.Errorf("warnings without --legacy-rbac: %v", rep.Warnings)
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
	exp, ok := setup.TokenExpiry(cfg.AuthInfos["spark-user"].Token)
	if !ok || !exp.Equal(rep.TokenExpires) {
		t.Fatalf("kubeconfig token expiry %v %v, report %v", exp, ok, rep.TokenExpires)
	}
	leastPrivilege(t, ctx, c, sa, "default")

	// Repairs: a recreated service account invalidates the bound token, so
	// a new one is requested and kubeconfig-secret follows; a policy id
	// alone is replaced.
	if err := kc.Clientset.CoreV1().ServiceAccounts("default").Delete(ctx, "spark", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rep3, err := setup.Setup(ctx, kc, setup.Options{KMS: setup.KMSCredentials{PolicyID: "policy-2"}})
	if err != nil {
		t.Fatal(err)
	}
	res = results(rep3)
	if res["ServiceAccount/spark"] != kube.Created || res["Token/spark"] != kube.Created || res["Secret/kubeconfig-secret"] != kube.Updated || res["Secret/kms-secret"] != kube.Updated || res["Secret/spark-secret"] != kube.Unchanged {
		t.Fatalf("repair: %+v", rep3.Items)
	}
	// A token with less than half of its duration left is renewed.
	rep3, err = setup.Setup(ctx, kc, setup.Options{TokenDuration: 49 * time.Hour})
	if err != nil || results(rep3)["Token/spark"] != kube.Created || time.Until(rep3.TokenExpires) < 48*time.Hour {
		t.Fatalf("renewal: %+v %v", rep3.Items, err)
	}

	// A binding to another role is reported, not replaced.
	other := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "spark-view"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"}}
	if _, err := kc.Clientset.RbacV1().RoleBindings("default").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Setup(ctx, kc, setup.Options{Binding: "spark-view"}); err == nil || !strings.Contains(err.Error(), "kubectl -n default delete rolebinding spark-view") {
		t.Fatalf("foreign binding: %v", err)
	}

	// Another namespace: created; the password comes from its ssl-password;
	// the KMS credentials are enrolled; its own Role and RoleBinding.
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
	if results(rep4)["RoleBinding/spark-role"] != kube.Created || enrolled != 1 {
		t.Fatalf("jobs: %+v, enrolled %d", rep4.Items, enrolled)
	}
	s, _ = kc.Clientset.CoreV1().Secrets("jobs").Get(ctx, "spark-secret", metav1.GetOptions{})
	if string(s.Data["secret"]) != password {
		t.Fatal("spark-secret in jobs: not the password of ssl-password")
	}
	if rep5, err := setup.Setup(ctx, kc, jobs); err != nil || rep5.Changed() || enrolled != 1 {
		t.Fatalf("jobs again: %+v %v (enrolled %d)", rep5.Items, err, enrolled)
	}

	legacy(t, ctx, c, kc)

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
	if strings.Contains(string(m), "ClusterRoleBinding") || strings.Contains(string(m), "service-account-token") || !strings.Contains(string(m), "kind: Role\n") {
		t.Fatalf("dry-run manifests without --legacy-rbac:\n%s", m)
	}
	if out, err := c.Kubectl(t, m, "apply", "--dry-run=server", "-f", "-"); err != nil || strings.Count(string(out), "server dry run") != 6 {
		t.Fatalf("dry-run manifests: %v\n%s", err, out)
	}
}

// leastPrivilege checks what the job's kubeconfig (client sa) may do: run
// pods, services, configmaps and claims in ns; no Secrets in ns, in another
// namespace (where the KMS keeps its root key) or cluster-wide; no RBAC.
func leastPrivilege(t *testing.T, ctx context.Context, c *k8stest.Cluster, sa kubernetes.Interface, ns string) {
	t.Helper()
	kmsNS := "ppml-kms-" + ns
	if _, err := c.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kmsNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{ns, kmsNS} {
		root := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ppml-root-key"}, Data: map[string][]byte{"root.key": []byte("k")}}
		if _, err := c.Clientset.CoreV1().Secrets(n).Create(ctx, root, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "spark-driver-test"}, Spec: corev1.PodSpec{
		ServiceAccountName: "spark", Containers: []corev1.Container{{Name: "driver", Image: "intelanalytics/bigdl-ppml-trusted-bigdata-gramine-reference-8g:2.5.0-SNAPSHOT"}}}}
	if _, err := sa.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod as spark: %v", err)
	}
	if err := sa.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete pod as spark: %v", err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "spark-driver-svc"}, Spec: corev1.ServiceSpec{ClusterIP: "None", Ports: []corev1.ServicePort{{Port: 7078}}}}
	if _, err := sa.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("create service as spark: %v", err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "spark-conf"}}
	if _, err := sa.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("create configmap as spark: %v", err)
	}
	if _, err := sa.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("list claims as spark: %v", err)
	}
	forbidden := func(what string, err error) {
		t.Helper()
		if !apierrors.IsForbidden(err) {
			t.Errorf("spark may %s: %v (want forbidden)", what, err)
		}
	}
	_, err := sa.CoreV1().Secrets(ns).Get(ctx, "kms-secret", metav1.GetOptions{})
	forbidden("read kms-secret in "+ns, err)
	_, err = sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	forbidden("list Secrets in "+ns, err)
	_, err = sa.CoreV1().Secrets(kmsNS).Get(ctx, "ppml-root-key", metav1.GetOptions{})
	forbidden("read the root key in "+kmsNS, err)
	_, err = sa.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	forbidden("list Secrets in every namespace", err)
	_, err = sa.CoreV1().Pods(kmsNS).List(ctx, metav1.ListOptions{})
	forbidden("list pods in another namespace", err)
	_, err = sa.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "x"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "admin"}, Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "spark", Namespace: ns}}}, metav1.CreateOptions{})
	forbidden("bind itself to admin", err)
}

// legacy: --legacy-rbac reproduces upstream (and warns), and a later run
// without it takes the rights and the non-expiring token back.
func legacy(t *testing.T, ctx context.Context, c *k8stest.Cluster, kc *kube.Client) {
	t.Helper()
	o := setup.Options{Namespace: "legacy", Password: []byte(password), KMS: setup.KMSCredentials{AppID: "a", APIKey: "k"}, LegacyRBAC: true}
	rep, err := setup.Setup(ctx, kc, o)
	if err != nil {
		t.Fatal(err)
	}
	res := results(rep)
	if res["ClusterRoleBinding/spark-role"] != kube.Created || res["Secret/spark-service-account-token"] != kube.Created || !rep.TokenExpires.IsZero() {
		t.Fatalf("legacy: %+v", rep.Items)
	}
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "reads every Secret") || !strings.Contains(rep.Warnings[0], "never expires") {
		t.Fatalf("legacy warnings: %v", rep.Warnings)
	}
	rc, err := clientcmd.RESTConfigFromKubeConfig(rep.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	old, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	// What upstream's set-up allows: the job reads the KMS's Secrets.
	if _, err := old.CoreV1().Secrets("ppml-kms-default").Get(ctx, "ppml-root-key", metav1.GetOptions{}); err != nil {
		t.Fatalf("legacy RBAC cannot read the root key (the test premise): %v", err)
	}

	o.LegacyRBAC = false
	rep, err = setup.Setup(ctx, kc, o)
	if err != nil {
		t.Fatal(err)
	}
	res = results(rep)
	if res["ClusterRoleBinding/spark-role"] != kube.Deleted || res["Secret/spark-service-account-token"] != kube.Deleted || res["Token/spark"] != kube.Created || res["Secret/kubeconfig-secret"] != kube.Updated {
		t.Fatalf("from legacy: %+v", rep.Items)
	}
	if _, err := kc.Clientset.RbacV1().ClusterRoleBindings().Get(ctx, "spark-role", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("cluster role binding left: %v", err)
	}
	// The old token is revoked: it no longer authenticates (once the API
	// server's few seconds of token cache have passed).
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 40*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := old.CoreV1().Pods("legacy").List(ctx, metav1.ListOptions{})
		return apierrors.IsUnauthorized(err), nil
	})
	if err != nil {
		t.Errorf("the old legacy token still authenticates: %v", err)
	}
	rc, err = clientcmd.RESTConfigFromKubeConfig(rep.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	leastPrivilege(t, ctx, c, sa, "legacy")
	if _, err := setup.Setup(ctx, kc, setup.Options{Namespace: "legacy", TokenDuration: time.Minute}); err == nil || !strings.Contains(err.Error(), "at least 10m") {
		t.Fatalf("short token: %v", err)
	}
}
