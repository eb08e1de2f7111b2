package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ppml-project/ppml/k8s/kube"
	"github.com/ppml-project/ppml/k8s/manifests"
	"github.com/ppml-project/ppml/k8s/material"
	"github.com/ppml-project/ppml/k8s/setup"
)

// SGX device plugin resources a node must advertise.
var SGXResources = []corev1.ResourceName{"sgx.intel.com/epc", "sgx.intel.com/enclave", "sgx.intel.com/provision"}

// RequiredKeys are the keys each Secret must hold (ssl-keys may lack the
// unencrypted server.key/server.pem copies; ppml serve reads server.key).
var RequiredKeys = map[string][]string{
	material.SSLKeysSecret:     {material.JKSFile, material.PKCS12File, material.ServerCRTFile, material.ServerCSRFile},
	material.SSLPasswordSecret: {material.KeyTxtFile, material.OutputBinFile},
	material.SparkSecret:       {material.SparkSecretKey},
	setup.KMSSecret:            {setup.KeyAppID, setup.KeyAPIKey, setup.KeyPolicyID},
	setup.KubeconfigSecret:     {setup.KubeconfigKey},
}

// SecretOrder is the order the Secrets are checked in.
var SecretOrder = []string{material.SSLKeysSecret, material.SSLPasswordSecret, material.SparkSecret, setup.KMSSecret, setup.KubeconfigSecret}

// ClusterChecks checks the cluster: reachable, SGX device plugin, the five
// Secrets and their keys, the password shared by three of them, the
// service-account token and the RBAC of the service account.
func ClusterChecks(ctx context.Context, c *kube.Client, opts Options) []Check {
	o := opts.withDefaults()
	ns := o.Namespace
	cs := c.Clientset
	ctx, cancel := context.WithTimeout(ctx, 4*o.Timeout)
	defer cancel()

	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		return []Check{fail("cluster reachable", fmt.Sprintf("the API server at %s does not answer: %v", c.Config.Host, err),
			"check the kubeconfig (ppml doctor --kubeconfig PATH) and that the cluster is up: kubectl cluster-info")}
	}
	out := []Check{pass("cluster reachable", c.Config.Host+", Kubernetes "+v.GitVersion)}
	out = append(out, sgxPluginCheck(ctx, c))

	setupFix := fmt.Sprintf("ppml k8s setup --namespace %s", ns)
	secrets := map[string]*corev1.Secret{}
	for _, name := range SecretOrder {
		check := "secret " + name
		s, err := cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		fix := secretFix(name, ns)
		if apierrors.IsNotFound(err) {
			out = append(out, fail(check, fmt.Sprintf("Secret %s/%s does not exist", ns, name), fix))
			continue
		}
		if err != nil {
			out = append(out, fail(check, fmt.Sprintf("cannot read Secret %s/%s: %v", ns, name, err), "run ppml doctor with a kubeconfig that may read Secrets in "+ns))
			continue
		}
		var missing []string
		for _, k := range RequiredKeys[name] {
			v, ok := s.Data[k]
			if !ok || (len(v) == 0 && k != setup.KeyPolicyID) {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			out = append(out, fail(check, fmt.Sprintf("Secret %s/%s lacks key(s) %s (has %s)", ns, name, strings.Join(missing, ", "), strings.Join(keysOf(s), ", ")), fix))
			continue
		}
		secrets[name] = s
		if name == setup.KubeconfigSecret {
			if p := kubeconfigProblem(ctx, c, o, s.Data[setup.KubeconfigKey]); p != "" {
				out = append(out, fail(check, p, setupFix))
				continue
			}
		}
		out = append(out, pass(check, strings.Join(keysOf(s), ", ")))
	}
	if pw, sp := secrets[material.SSLPasswordSecret], secrets[material.SparkSecret]; pw != nil && sp != nil {
		got, err := material.RecoverPassword(pw.Data[material.KeyTxtFile], pw.Data[material.OutputBinFile])
		switch {
		case err != nil:
			out = append(out, fail("one password", fmt.Sprintf("the password cannot be recovered from ssl-password: %v", err), secretFix(material.SSLPasswordSecret, ns)))
		case string(got) != string(sp.Data[material.SparkSecretKey]):
			out = append(out, fail("one password", "spark-secret does not hold the password encrypted in ssl-password (the images need one password for ssl-keys, ssl-password and spark-secret)",
				fmt.Sprintf("ppml password generate --password-file pw.txt --apply --namespace %s (with the password of ssl-keys)", ns)))
		default:
			out = append(out, pass("one password", "ssl-password and spark-secret agree"))
		}
		clear(got)
	}

	var kubeconfig []byte
	if s := secrets[setup.KubeconfigSecret]; s != nil {
		kubeconfig = s.Data[setup.KubeconfigKey]
	}
	out = append(out, tokenCheck(ctx, c, o, kubeconfig))
	out = append(out, rbacCheck(ctx, c, o))
	out = append(out, secretsRBACCheck(ctx, c, o))
	return out
}

func keysOf(s *corev1.Secret) []string {
	keys := make([]string, 0, len(s.Data))
	for k := range s.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func secretFix(name, ns string) string {
	switch name {
	case material.SSLKeysSecret:
		return fmt.Sprintf("ppml tls generate --password-file pw.txt --dns ppml.%s.svc --apply --namespace %s", ns, ns)
	case material.SSLPasswordSecret, material.SparkSecret:
		return fmt.Sprintf("ppml password generate --password-file pw.txt --apply --namespace %s (same password as ssl-keys)", ns)
	case setup.KMSSecret:
		return fmt.Sprintf("ppml k8s setup --namespace %s --kms-app-id ID --kms-api-key-file app.key --kms-policy-id POLICY (or --kms-url URL --admin-token-file F to enroll)", ns)
	default:
		return fmt.Sprintf("ppml k8s setup --namespace %s", ns)
	}
}

func sgxPluginCheck(ctx context.Context, c *kube.Client) Check {
	const name = "SGX device plugin"
	fix := "deploy the Intel SGX device plugin and node feature discovery (" + manifests.SGXDevicePluginRelease + ") on nodes with SGX enabled in the BIOS: ppml k8s manifests --sgx-device-plugin | kubectl apply -f - (twice: the second run creates the NodeFeatureRule once its CRD exists)"
	nodes, err := c.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fail(name, fmt.Sprintf("cannot list nodes: %v", err), "run ppml doctor with a kubeconfig that may list nodes")
	}
	var ready []string
	for _, n := range nodes.Items {
		ok := true
		for _, r := range SGXResources {
			q, has := n.Status.Allocatable[r]
			if !has || q.IsZero() {
				ok = false
			}
		}
		if ok {
			ready = append(ready, n.Name)
		}
	}
	if len(ready) == 0 {
		return fail(name, fmt.Sprintf("no node (of %d) advertises %s, %s and %s", len(nodes.Items), SGXResources[0], SGXResources[1], SGXResources[2]), fix)
	}
	return pass(name, fmt.Sprintf("%d of %d nodes: %s", len(ready), len(nodes.Items), strings.Join(ready, ", ")))
}

// tokenCheck checks the token in kubeconfig-secret: it authenticates as
// the service account (TokenReview) and when it expires.
func tokenCheck(ctx context.Context, c *kube.Client, o Options, kubeconfig []byte) Check {
	const name = "service account token"
	ns := o.Namespace
	fix := fmt.Sprintf("ppml k8s setup --namespace %s (requests a new time-bound token)", ns)
	sa, err := c.Clientset.CoreV1().ServiceAccounts(ns).Get(ctx, o.ServiceAccount, metav1.GetOptions{})
	if err != nil {
		return fail(name, fmt.Sprintf("ServiceAccount %s/%s: %v", ns, o.ServiceAccount, errText(err)), fix)
	}
	token := kubeconfigToken(kubeconfig)
	if token == "" {
		return fail(name, fmt.Sprintf("no token of %s: kubeconfig-secret is missing or holds no token", o.ServiceAccount), fix)
	}
	user, err := setup.ReviewToken(ctx, c, token)
	if err != nil {
		return fail(name, fmt.Sprintf("the token in kubeconfig-secret: %v (expired, revoked, or the service account was recreated)", err), fix)
	}
	if want := setup.ServiceAccountUser(ns, o.ServiceAccount); user != want {
		return fail(name, fmt.Sprintf("the token in kubeconfig-secret authenticates as %s, not %s", user, want), fix)
	}
	if uid := setup.TokenServiceAccountUID(token); uid != "" && uid != string(sa.UID) {
		return fail(name, fmt.Sprintf("the token in kubeconfig-secret was issued to an earlier ServiceAccount %s/%s (recreated since)", ns, o.ServiceAccount), fix)
	}
	exp, ok := setup.TokenExpiry(token)
	if !ok {
		return pass(name, "a non-expiring token (--legacy-rbac); without it setup issues a time-bound one")
	}
	return pass(name, fmt.Sprintf("expires %s (in %s); renew with: %s", exp.UTC().Format(time.RFC3339), time.Until(exp).Round(time.Minute), fix))
}

func kubeconfigToken(data []byte) string {
	kc, err := clientcmd.Load(data)
	if err != nil || len(data) == 0 {
		return ""
	}
	if cur := kc.Contexts[kc.CurrentContext]; cur != nil {
		if ai := kc.AuthInfos[cur.AuthInfo]; ai != nil {
			return ai.Token
		}
	}
	return ""
}

func errText(err error) string {
	if apierrors.IsNotFound(err) {
		return "not found"
	}
	return err.Error()
}

// allowed asks the API server (SubjectAccessReview) whether the service
// account may do verb on resource (name) in namespace ("" = every
// namespace).
func allowed(ctx context.Context, c *kube.Client, o Options, verb, resource, namespace, name string) (bool, error) {
	sar := &authv1.SubjectAccessReview{Spec: authv1.SubjectAccessReviewSpec{
		User:               setup.ServiceAccountUser(o.Namespace, o.ServiceAccount),
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + o.Namespace, "system:authenticated"},
		ResourceAttributes: &authv1.ResourceAttributes{Namespace: namespace, Verb: verb, Resource: resource, Name: name},
	}}
	res, err := c.Clientset.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("cannot ask the API server (SubjectAccessReview): %v", err)
	}
	return res.Status.Allowed, nil
}

const sarFix = "run ppml doctor with a kubeconfig that may create subjectaccessreviews"

func rbacCheck(ctx context.Context, c *kube.Client, o Options) Check {
	name := "RBAC: " + o.ServiceAccount + " can create pods"
	ns := o.Namespace
	user := setup.ServiceAccountUser(ns, o.ServiceAccount)
	ok, err := allowed(ctx, c, o, "create", "pods", ns, "")
	if err != nil {
		return fail(name, err.Error(), sarFix)
	}
	if !ok {
		return fail(name, fmt.Sprintf("%s may not create pods in %s (RoleBinding %s to Role %s missing?)", user, ns, o.Binding, setup.DefaultRole),
			fmt.Sprintf("ppml k8s setup --namespace %s (binds Role %s: pods, services, configmaps, persistentvolumeclaims)", ns, setup.DefaultRole))
	}
	return pass(name, user)
}

// secretsRBACCheck fails when the service account, whose token every Spark
// driver mounts, can read Secrets: in its namespace, in any namespace, or
// the KMS root key and admin token; or when those live in the job
// namespace, where creating a pod is enough to mount them.
func secretsRBACCheck(ctx context.Context, c *kube.Client, o Options) Check {
	name := "RBAC: " + o.ServiceAccount + " cannot read Secrets"
	ns, kmsNS := o.Namespace, o.KMSNamespace
	user := setup.ServiceAccountUser(ns, o.ServiceAccount)
	fix := fmt.Sprintf("ppml k8s setup --namespace %s (without --legacy-rbac: replaces the cluster-wide edit binding by Role %s and revokes the non-expiring token); "+
		"find other bindings with: kubectl get rolebindings,clusterrolebindings -A -o wide | grep %s:%s", ns, setup.DefaultRole, ns, o.ServiceAccount)
	var can []string
	for _, q := range []struct{ verb, ns, name, what string }{
		{"get", ns, "", "get Secrets in " + ns},
		{"list", ns, "", "list Secrets in " + ns},
		{"list", "", "", "list Secrets in every namespace"},
		{"get", kmsNS, manifests.RootKeySecret, "get the KMS root key Secret " + kmsNS + "/" + manifests.RootKeySecret},
		{"get", kmsNS, manifests.AdminTokenSecret, "get the KMS admin token Secret " + kmsNS + "/" + manifests.AdminTokenSecret},
	} {
		ok, err := allowed(ctx, c, o, q.verb, "secrets", q.ns, q.name)
		if err != nil {
			return fail(name, err.Error(), sarFix)
		}
		if ok {
			can = append(can, q.what)
		}
	}
	if len(can) > 0 {
		return fail(name, fmt.Sprintf("%s, whose token every Spark driver mounts, may %s", user, strings.Join(can, ", ")), fix)
	}
	if kmsNS == ns {
		var here []string
		for _, s := range []string{manifests.RootKeySecret, manifests.AdminTokenSecret} {
			if _, err := c.Clientset.CoreV1().Secrets(ns).Get(ctx, s, metav1.GetOptions{}); err == nil {
				here = append(here, s)
			}
		}
		if len(here) > 0 {
			return fail(name, fmt.Sprintf("Secret(s) %s of the KMS are in the job namespace %s, where %s may create pods, and a pod can mount any Secret of its namespace", strings.Join(here, ", "), ns, o.ServiceAccount),
				"run the KMS in its own namespace: ppml k8s manifests --namespace ppml (and --secrets), then ppml doctor --kms-namespace ppml")
		}
	}
	return pass(name, fmt.Sprintf("%s may not read Secrets here, elsewhere, or the KMS root key in %s", user, kmsNS))
}

// kubeconfigProblem checks the kubeconfig of kubeconfig-secret: it parses
// and its current context is spark-context with a token (tokenCheck checks
// the token).
func kubeconfigProblem(ctx context.Context, c *kube.Client, o Options, data []byte) string {
	kc, err := clientcmd.Load(data)
	if err != nil {
		return "kubeconfig-secret/config is not a kubeconfig: " + err.Error()
	}
	cur := kc.Contexts[kc.CurrentContext]
	if cur == nil {
		return "kubeconfig-secret/config has no current context"
	}
	if kc.CurrentContext != setup.DefaultContext || cur.AuthInfo != setup.DefaultUser {
		return fmt.Sprintf("kubeconfig-secret/config uses context %q and user %q, not %s and %s", kc.CurrentContext, cur.AuthInfo, setup.DefaultContext, setup.DefaultUser)
	}
	ai, cl := kc.AuthInfos[cur.AuthInfo], kc.Clusters[cur.Cluster]
	if ai == nil || ai.Token == "" || cl == nil || cl.Server == "" || len(kc.Clusters) != 1 {
		return "kubeconfig-secret/config is not a flattened minified kubeconfig with the service-account token"
	}
	return ""
}
