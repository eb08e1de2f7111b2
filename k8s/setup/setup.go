// Package setup prepares a namespace for BigDL PPML Spark jobs, doing with
// client-go what the "Configure K8S Environment" section of the BigDL PPML
// prerequisites page does with kubectl: the service account, its RBAC, a
// flattened minified kubeconfig with its token, and the Secrets
// spark-secret, kms-secret and kubeconfig-secret. Every step is idempotent:
// a second run reports each object unchanged.
//
// By default the service account gets a namespaced Role with only what
// Spark on Kubernetes needs (pods, services, configmaps and
// persistentvolumeclaims of the job namespace) and the kubeconfig holds a
// time-bound token from the TokenRequest API, renewed by running Setup
// again. Upstream's cluster-wide binding to ClusterRole edit (which reads
// every Secret of the cluster, the KMS root key included) and its
// non-expiring token Secret are only made with Options.LegacyRBAC; without
// it Setup removes them when an earlier run left them behind.
package setup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/ppml-project/ppml/k8s/kube"
	"github.com/ppml-project/ppml/k8s/material"
)

// Names the BigDL images, scripts and pod templates expect (the Kubernetes
// contract, section 3).
const (
	DefaultServiceAccount = "spark"
	DefaultBinding        = "spark-role"
	// DefaultRole is the namespaced Role bound to the service account.
	DefaultRole        = "spark-role"
	DefaultClusterRole = "edit"
	// DefaultTokenDuration is the lifetime requested for the kubeconfig's
	// token (the API server may shorten it).
	DefaultTokenDuration = 24 * time.Hour
	DefaultTokenSecret   = "spark-service-account-token"
	DefaultContext       = "spark-context"
	DefaultUser          = "spark-user"
	DefaultClusterName   = "kubernetes"

	KMSSecret        = "kms-secret"
	KubeconfigSecret = "kubeconfig-secret"
	// KubeconfigKey is the key of kubeconfig-secret (mounted at /root/.kube).
	KubeconfigKey = "config"
	// Keys of kms-secret (env APP_ID, API_KEY, ATTESTATION_POLICYID).
	KeyAppID    = "app_id"
	KeyAPIKey   = "api_key"
	KeyPolicyID = "policy_id"
)

// KMSCredentials are the values of kms-secret.
type KMSCredentials struct {
	AppID, APIKey, PolicyID string
}

// Options configure Setup and Manifests. Empty names take the defaults
// above; Namespace defaults to "default".
type Options struct {
	Namespace      string
	ServiceAccount string
	// Binding names the RoleBinding (the ClusterRoleBinding with
	// LegacyRBAC); Role the namespaced Role.
	Binding     string
	Role        string
	ClusterRole string
	TokenSecret string
	Context     string
	User        string
	// ClusterName names the cluster entry of the generated kubeconfig
	// (DefaultClusterName when empty); see ClusterNameOf.
	ClusterName string

	// KMS, when AppID and APIKey are set, is written to kms-secret.
	// Otherwise an existing complete kms-secret is kept, or Enroll (when
	// not nil) enrolls a new app. KMS.PolicyID alone replaces the policy id.
	KMS    KMSCredentials
	Enroll func(ctx context.Context) (appID, apiKey string, err error)

	// Password is the value of spark-secret (the password of ssl-keys and
	// ssl-password). When nil an existing spark-secret is kept, or the
	// password is recovered from the ssl-password Secret.
	Password []byte

	// LegacyRBAC reproduces upstream: a ClusterRoleBinding to ClusterRole
	// edit in every namespace and a non-expiring token Secret. Dangerous,
	// see LegacyWarning.
	LegacyRBAC bool
	// TokenDuration is the lifetime requested for the kubeconfig token
	// (DefaultTokenDuration when 0). A token with less than half of it
	// left is renewed.
	TokenDuration time.Duration

	// TokenTimeout bounds the wait for the token controller with
	// LegacyRBAC (60 s when 0).
	TokenTimeout time.Duration
}

// LegacyWarning says why LegacyRBAC is dangerous.
const LegacyWarning = "--legacy-rbac: the service account gets ClusterRole edit in every namespace, which reads every Secret of the cluster " +
	"(the KMS root key and admin token included), with a token that never expires, stored in kubeconfig-secret that every Spark driver mounts: " +
	"anyone who controls one Spark pod controls the KMS. Use it only where the images cannot work with the namespaced Role."

func (o Options) withDefaults() Options {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&o.Namespace, metav1.NamespaceDefault)
	def(&o.ServiceAccount, DefaultServiceAccount)
	def(&o.Binding, DefaultBinding)
	def(&o.Role, DefaultRole)
	def(&o.ClusterRole, DefaultClusterRole)
	def(&o.TokenSecret, DefaultTokenSecret)
	def(&o.Context, DefaultContext)
	def(&o.User, DefaultUser)
	def(&o.ClusterName, DefaultClusterName)
	if o.TokenTimeout == 0 {
		o.TokenTimeout = 60 * time.Second
	}
	if o.TokenDuration == 0 {
		o.TokenDuration = DefaultTokenDuration
	}
	return o
}

func (o Options) validate() error {
	if (o.KMS.AppID == "") != (o.KMS.APIKey == "") {
		return errors.New("the KMS app id and API key go together: pass both (--kms-app-id and --kms-api-key-file), or neither to keep the existing kms-secret or enroll with --kms-url")
	}
	if o.TokenDuration < 10*time.Minute {
		return fmt.Errorf("token duration %s: the TokenRequest API needs at least 10m", o.TokenDuration)
	}
	return nil
}

// Item is what Setup did to one object.
type Item struct {
	Kind   string      `json:"kind"`
	Name   string      `json:"name"`
	Result kube.Result `json:"result"`
	Note   string      `json:"note,omitempty"`
}

// Report lists every object Setup touched, in order.
type Report struct {
	Namespace string `json:"namespace"`
	Items     []Item `json:"items"`
	// TokenExpires is when the kubeconfig's token expires (zero for the
	// non-expiring token of LegacyRBAC).
	TokenExpires time.Time `json:"token_expires,omitzero"`
	// Warnings are printed to the operator (LegacyRBAC).
	Warnings []string `json:"warnings,omitempty"`
	// Kubeconfig is the generated kubeconfig (holds the token; never
	// printed).
	Kubeconfig []byte `json:"-"`
}

// Changed reports whether any object was created or updated.
func (r *Report) Changed() bool {
	for _, it := range r.Items {
		if it.Result != kube.Unchanged {
			return true
		}
	}
	return false
}

func (r *Report) add(kind, name string, res kube.Result, note string) {
	r.Items = append(r.Items, Item{Kind: kind, Name: name, Result: res, Note: note})
}

var managedLabels = map[string]string{"app.kubernetes.io/managed-by": "ppml"}

func labels() map[string]string {
	m := make(map[string]string, len(managedLabels))
	for k, v := range managedLabels {
		m[k] = v
	}
	return m
}

// Setup configures the namespace; see the package comment. c must have
// rights to manage service accounts, Secrets and cluster role bindings.
func Setup(ctx context.Context, c *kube.Client, opts Options) (Report, error) {
	o := opts.withDefaults()
	rep := Report{Namespace: o.Namespace}
	if err := o.validate(); err != nil {
		return rep, err
	}
	cs := c.Clientset
	ns := o.Namespace

	// Namespace.
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels()}}
		if _, err := cs.CoreV1().Namespaces().Create(ctx, obj, metav1.CreateOptions{FieldManager: kube.FieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
			return rep, fmt.Errorf("create namespace %s: %w", ns, err)
		}
		rep.add("Namespace", ns, kube.Created, "")
	} else if err != nil {
		return rep, fmt.Errorf("cluster not reachable or namespace %s not readable: %w", ns, err)
	} else {
		rep.add("Namespace", ns, kube.Unchanged, "")
	}

	// Decide the Secret contents before changing anything else, so that a
	// missing password or KMS credential fails early.
	spark, sparkNote, err := sparkSecret(ctx, c, o)
	if err != nil {
		return rep, err
	}
	kms, kmsNote, err := kmsSecret(ctx, c, o)
	if err != nil {
		return rep, err
	}

	// Service account.
	res, err := ensureServiceAccount(ctx, c, o)
	if err != nil {
		return rep, err
	}
	rep.add("ServiceAccount", o.ServiceAccount, res, "")

	var token string
	if o.LegacyRBAC {
		rep.Warnings = append(rep.Warnings, LegacyWarning)
		res, err = ensureClusterBinding(ctx, c, o)
		if err != nil {
			return rep, err
		}
		rep.add("ClusterRoleBinding", o.Binding, res, "clusterrole/"+o.ClusterRole+" in every namespace (--legacy-rbac)")

		// Token Secret (Kubernetes >= 1.24 no longer creates one).
		res, err = ensureTokenSecret(ctx, c, o)
		if err != nil {
			return rep, err
		}
		rep.add("Secret", o.TokenSecret, res, "kubernetes.io/service-account-token, never expires (--legacy-rbac)")
		if token, err = WaitForToken(ctx, c, ns, o.TokenSecret, o.TokenTimeout); err != nil {
			return rep, err
		}
	} else {
		res, err = ensureRole(ctx, c, o)
		if err != nil {
			return rep, err
		}
		rep.add("Role", o.Role, res, "pods, services, configmaps, persistentvolumeclaims in "+ns)
		res, err = ensureRoleBinding(ctx, c, o)
		if err != nil {
			return rep, err
		}
		rep.add("RoleBinding", o.Binding, res, "role/"+o.Role)
		if err := removeLegacy(ctx, c, o, &rep); err != nil {
			return rep, err
		}
		var note string
		token, rep.TokenExpires, res, note, err = boundToken(ctx, c, o)
		if err != nil {
			return rep, err
		}
		rep.add("Token", o.ServiceAccount, res, note)
	}

	// The kubeconfig of spark-user / spark-context.
	kc, err := Kubeconfig(c.Config, o, token)
	if err != nil {
		return rep, err
	}
	rep.Kubeconfig = kc

	for _, s := range []struct {
		secret *corev1.Secret
		note   string
	}{
		{spark, sparkNote},
		{kms, kmsNote},
		{material.NewSecret(KubeconfigSecret, ns, map[string][]byte{KubeconfigKey: kc}), "user " + o.User + ", context " + o.Context},
	} {
		res := kube.Unchanged
		if s.secret.Data != nil {
			if res, err = c.ApplySecret(ctx, s.secret, false); err != nil {
				return rep, err
			}
		}
		rep.add("Secret", s.secret.Name, res, s.note)
	}
	return rep, nil
}

// sparkSecret returns the spark-secret to apply; Data is nil when the
// existing one is kept.
func sparkSecret(ctx context.Context, c *kube.Client, o Options) (*corev1.Secret, string, error) {
	if o.Password != nil {
		if err := material.ValidatePassword(o.Password); err != nil {
			return nil, "", err
		}
		return material.SparkSecretFor(bytes.Clone(o.Password), o.Namespace), "from the password given", nil
	}
	secrets := c.Clientset.CoreV1().Secrets(o.Namespace)
	cur, err := secrets.Get(ctx, material.SparkSecret, metav1.GetOptions{})
	if err == nil && len(cur.Data[material.SparkSecretKey]) > 0 {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: material.SparkSecret}}, "kept", nil
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, "", fmt.Errorf("read Secret %s/%s: %w", o.Namespace, material.SparkSecret, err)
	}
	pw, perr := secrets.Get(ctx, material.SSLPasswordSecret, metav1.GetOptions{})
	if perr == nil {
		p, rerr := material.RecoverPassword(pw.Data[material.KeyTxtFile], pw.Data[material.OutputBinFile])
		if rerr == nil {
			return material.SparkSecretFor(p, o.Namespace), "password recovered from ssl-password", nil
		}
		return nil, "", fmt.Errorf("spark-secret is missing and the password cannot be recovered from Secret %s/%s (%v): pass --password-file with the password of 'ppml tls generate'", o.Namespace, material.SSLPasswordSecret, rerr)
	}
	return nil, "", fmt.Errorf("spark-secret needs the password of ssl-keys and ssl-password, and neither spark-secret nor ssl-password exists in namespace %s: run 'ppml password generate --password-file pw.txt --apply --namespace %s' first, or pass --password-file", o.Namespace, o.Namespace)
}

// kmsSecret returns the kms-secret to apply; Data is nil when the existing
// one is kept.
func kmsSecret(ctx context.Context, c *kube.Client, o Options) (*corev1.Secret, string, error) {
	cur, err := c.Clientset.CoreV1().Secrets(o.Namespace).Get(ctx, KMSSecret, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, "", fmt.Errorf("read Secret %s/%s: %w", o.Namespace, KMSSecret, err)
	}
	var have KMSCredentials
	complete := false
	if err == nil {
		have = KMSCredentials{string(cur.Data[KeyAppID]), string(cur.Data[KeyAPIKey]), string(cur.Data[KeyPolicyID])}
		_, hasPolicy := cur.Data[KeyPolicyID]
		complete = have.AppID != "" && have.APIKey != "" && hasPolicy
	}
	want, note := have, ""
	switch {
	case o.KMS.AppID != "":
		want, note = o.KMS, "from the credentials given"
	case complete:
		note = "kept"
		if o.KMS.PolicyID != "" {
			want.PolicyID = o.KMS.PolicyID
		}
	case o.Enroll != nil:
		id, key, err := o.Enroll(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("kms-secret: enrolling with the KMS: %w", err)
		}
		want, note = KMSCredentials{AppID: id, APIKey: key, PolicyID: o.KMS.PolicyID}, "enrolled app "+id
	default:
		return nil, "", fmt.Errorf("kms-secret is missing or incomplete in namespace %s: pass --kms-app-id with --kms-api-key-file (and --kms-policy-id), or --kms-url with --admin-token-file to enroll with the ppml KMS", o.Namespace)
	}
	if complete && want == have {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: KMSSecret}}, note, nil
	}
	return material.NewSecret(KMSSecret, o.Namespace, map[string][]byte{
		KeyAppID: []byte(want.AppID), KeyAPIKey: []byte(want.APIKey), KeyPolicyID: []byte(want.PolicyID),
	}), note, nil
}

func ensureServiceAccount(ctx context.Context, c *kube.Client, o Options) (kube.Result, error) {
	sas := c.Clientset.CoreV1().ServiceAccounts(o.Namespace)
	_, err := sas.Get(ctx, o.ServiceAccount, metav1.GetOptions{})
	if err == nil {
		return kube.Unchanged, nil
	}
	if !apierrors.IsNotFound(err) {
		return "", fmt.Errorf("read ServiceAccount %s/%s: %w", o.Namespace, o.ServiceAccount, err)
	}
	if _, err := sas.Create(ctx, serviceAccount(o), metav1.CreateOptions{FieldManager: kube.FieldManager}); err != nil {
		return "", fmt.Errorf("create ServiceAccount %s/%s: %w", o.Namespace, o.ServiceAccount, err)
	}
	return kube.Created, nil
}

func serviceAccount(o Options) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: o.ServiceAccount, Namespace: o.Namespace, Labels: labels()},
	}
}

func subject(o Options) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: o.ServiceAccount, Namespace: o.Namespace}
}

func clusterBinding(o Options) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Binding, Labels: labels()},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: o.ClusterRole},
		Subjects:   []rbacv1.Subject{subject(o)},
	}
}

func ensureClusterBinding(ctx context.Context, c *kube.Client, o Options) (kube.Result, error) {
	crbs := c.Clientset.RbacV1().ClusterRoleBindings()
	cur, err := crbs.Get(ctx, o.Binding, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if _, err := crbs.Create(ctx, clusterBinding(o), metav1.CreateOptions{FieldManager: kube.FieldManager}); err != nil {
			return "", fmt.Errorf("create ClusterRoleBinding %s: %w", o.Binding, err)
		}
		return kube.Created, nil
	}
	if err != nil {
		return "", fmt.Errorf("read ClusterRoleBinding %s: %w", o.Binding, err)
	}
	want := clusterBinding(o).RoleRef
	if cur.RoleRef != want {
		return "", fmt.Errorf("ClusterRoleBinding %s exists with %s/%s, not ClusterRole/%s (the role of a binding cannot change): delete it with 'kubectl delete clusterrolebinding %s' or choose another name with --binding", o.Binding, cur.RoleRef.Kind, cur.RoleRef.Name, o.ClusterRole, o.Binding)
	}
	sub := subject(o)
	if slices.ContainsFunc(cur.Subjects, func(s rbacv1.Subject) bool {
		return s.Kind == sub.Kind && s.Name == sub.Name && s.Namespace == sub.Namespace
	}) {
		return kube.Unchanged, nil
	}
	upd := cur.DeepCopy()
	upd.Subjects = append(upd.Subjects, sub)
	if _, err := crbs.Update(ctx, upd, metav1.UpdateOptions{FieldManager: kube.FieldManager}); err != nil {
		return "", fmt.Errorf("add %s/%s to ClusterRoleBinding %s: %w", o.Namespace, o.ServiceAccount, o.Binding, err)
	}
	return kube.Updated, nil
}

func tokenSecret(o Options) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: o.TokenSecret, Namespace: o.Namespace, Labels: labels(),
			Annotations: map[string]string{corev1.ServiceAccountNameKey: o.ServiceAccount}},
		Type: corev1.SecretTypeServiceAccountToken,
	}
}

func ensureTokenSecret(ctx context.Context, c *kube.Client, o Options) (kube.Result, error) {
	secrets := c.Clientset.CoreV1().Secrets(o.Namespace)
	cur, err := secrets.Get(ctx, o.TokenSecret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if _, err := secrets.Create(ctx, tokenSecret(o), metav1.CreateOptions{FieldManager: kube.FieldManager}); err != nil {
			return "", fmt.Errorf("create Secret %s/%s: %w", o.Namespace, o.TokenSecret, err)
		}
		return kube.Created, nil
	}
	if err != nil {
		return "", fmt.Errorf("read Secret %s/%s: %w", o.Namespace, o.TokenSecret, err)
	}
	if cur.Type != corev1.SecretTypeServiceAccountToken || cur.Annotations[corev1.ServiceAccountNameKey] != o.ServiceAccount {
		return "", fmt.Errorf("Secret %s/%s exists but is not a service-account token of %s (type %s): delete it with 'kubectl -n %s delete secret %s' and run again", o.Namespace, o.TokenSecret, o.ServiceAccount, cur.Type, o.Namespace, o.TokenSecret)
	}
	return kube.Unchanged, nil
}

// WaitForToken waits until the token controller has filled the token of a
// service-account token Secret and returns it.
func WaitForToken(ctx context.Context, c *kube.Client, namespace, name string, timeout time.Duration) (string, error) {
	var token string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		s, err := c.Clientset.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		token = string(s.Data[corev1.ServiceAccountTokenKey])
		return token != "", nil
	})
	if err != nil {
		return "", fmt.Errorf("waiting for the token in Secret %s/%s (%v): Kubernetes did not fill it within %s; check that kube-controller-manager runs the serviceaccount-token controller (kubectl -n %s describe secret %s)", namespace, name, err, timeout, namespace, name)
	}
	return token, nil
}

// Kubeconfig returns a flattened, minified kubeconfig (kubectl config view
// --flatten --minify) for the API server of cfg, with user o.User holding
// token and current context o.Context.
func Kubeconfig(cfg *rest.Config, opts Options, token string) ([]byte, error) {
	o := opts.withDefaults()
	ca := cfg.CAData
	if len(ca) == 0 && cfg.CAFile != "" {
		b, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading the cluster CA %s: %w", cfg.CAFile, err)
		}
		ca = b
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters[o.ClusterName] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: ca,
		TLSServerName:            cfg.TLSClientConfig.ServerName,
		InsecureSkipTLSVerify:    cfg.Insecure,
	}
	kc.AuthInfos[o.User] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts[o.Context] = &clientcmdapi.Context{Cluster: o.ClusterName, AuthInfo: o.User, Namespace: o.Namespace}
	kc.CurrentContext = o.Context
	b, err := clientcmd.Write(*kc)
	if err != nil {
		return nil, fmt.Errorf("render kubeconfig: %w", err)
	}
	return b, nil
}

// ClusterNameOf returns the cluster name of the current context of the
// kubeconfig that kubectl would use (path, else $KUBECONFIG, else
// ~/.kube/config), or "" when there is none (in-cluster).
func ClusterNameOf(path string) string {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	raw, err := rules.Load()
	if err != nil || raw == nil {
		return ""
	}
	if c := raw.Contexts[raw.CurrentContext]; c != nil {
		return c.Cluster
	}
	return ""
}

// WriteKubeconfig writes data to path with mode 0600 (atomically) unless
// the file already holds exactly data.
func WriteKubeconfig(path string, data []byte) (kube.Result, error) {
	cur, err := os.ReadFile(path)
	if err == nil && bytes.Equal(cur, data) {
		if st, err := os.Stat(path); err == nil && st.Mode().Perm() != 0o600 {
			if err := os.Chmod(path, 0o600); err != nil {
				return "", err
			}
			return kube.Updated, nil
		}
		return kube.Unchanged, nil
	}
	res := kube.Updated
	if errors.Is(err, os.ErrNotExist) {
		res = kube.Created
	} else if err != nil {
		return "", fmt.Errorf("--kubeconfig-out: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kubeconfig-*")
	if err != nil {
		return "", fmt.Errorf("--kubeconfig-out: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err == nil {
		_, err = tmp.Write(data)
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			return "", fmt.Errorf("--kubeconfig-out %s: %w", path, err)
		}
	} else {
		tmp.Close()
		return "", err
	}
	return res, nil
}
