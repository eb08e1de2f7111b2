package setup

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ppml-project/ppml/k8s/kube"
)

// SparkRules are what the Spark driver does with the Kubernetes API in its
// own namespace: executor pods, the driver's headless service, the
// configuration maps it mounts into executors and on-demand volume claims.
// Nothing else, in particular no Secrets.
var SparkRules = []rbacv1.PolicyRule{{
	APIGroups: []string{""},
	Resources: []string{"pods", "services", "configmaps", "persistentvolumeclaims"},
	Verbs:     []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"},
}}

func role(o Options) *rbacv1.Role {
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Role, Namespace: o.Namespace, Labels: labels()},
		Rules:      SparkRules,
	}
}

func roleBinding(o Options) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Binding, Namespace: o.Namespace, Labels: labels()},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: o.Role},
		Subjects:   []rbacv1.Subject{subject(o)},
	}
}

// ensureRole creates the Role or resets its rules to SparkRules (a wider
// Role of that name is narrowed).
func ensureRole(ctx context.Context, c *kube.Client, o Options) (kube.Result, error) {
	roles := c.Clientset.RbacV1().Roles(o.Namespace)
	cur, err := roles.Get(ctx, o.Role, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if _, err := roles.Create(ctx, role(o), metav1.CreateOptions{FieldManager: kube.FieldManager}); err != nil {
			return "", fmt.Errorf("create Role %s/%s: %w", o.Namespace, o.Role, err)
		}
		return kube.Created, nil
	}
	if err != nil {
		return "", fmt.Errorf("read Role %s/%s: %w", o.Namespace, o.Role, err)
	}
	if slices.EqualFunc(cur.Rules, SparkRules, func(a, b rbacv1.PolicyRule) bool {
		return slices.Equal(a.APIGroups, b.APIGroups) && slices.Equal(a.Resources, b.Resources) && slices.Equal(a.Verbs, b.Verbs) &&
			len(a.ResourceNames) == 0 && len(a.NonResourceURLs) == 0
	}) {
		return kube.Unchanged, nil
	}
	upd := cur.DeepCopy()
	upd.Rules = SparkRules
	if _, err := roles.Update(ctx, upd, metav1.UpdateOptions{FieldManager: kube.FieldManager}); err != nil {
		return "", fmt.Errorf("update Role %s/%s: %w", o.Namespace, o.Role, err)
	}
	return kube.Updated, nil
}

func ensureRoleBinding(ctx context.Context, c *kube.Client, o Options) (kube.Result, error) {
	rbs := c.Clientset.RbacV1().RoleBindings(o.Namespace)
	cur, err := rbs.Get(ctx, o.Binding, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if _, err := rbs.Create(ctx, roleBinding(o), metav1.CreateOptions{FieldManager: kube.FieldManager}); err != nil {
			return "", fmt.Errorf("create RoleBinding %s/%s: %w", o.Namespace, o.Binding, err)
		}
		return kube.Created, nil
	}
	if err != nil {
		return "", fmt.Errorf("read RoleBinding %s/%s: %w", o.Namespace, o.Binding, err)
	}
	if want := roleBinding(o).RoleRef; cur.RoleRef != want {
		return "", fmt.Errorf("RoleBinding %s/%s exists with %s/%s, not Role/%s (the role of a binding cannot change): delete it with 'kubectl -n %s delete rolebinding %s' or choose another name with --binding",
			o.Namespace, o.Binding, cur.RoleRef.Kind, cur.RoleRef.Name, o.Role, o.Namespace, o.Binding)
	}
	sub := subject(o)
	if len(cur.Subjects) == 1 && cur.Subjects[0].Kind == sub.Kind && cur.Subjects[0].Name == sub.Name && cur.Subjects[0].Namespace == sub.Namespace {
		return kube.Unchanged, nil
	}
	// Exactly our service account: others bound here would share its rights.
	upd := cur.DeepCopy()
	upd.Subjects = []rbacv1.Subject{sub}
	if _, err := rbs.Update(ctx, upd, metav1.UpdateOptions{FieldManager: kube.FieldManager}); err != nil {
		return "", fmt.Errorf("update RoleBinding %s/%s: %w", o.Namespace, o.Binding, err)
	}
	return kube.Updated, nil
}

// removeLegacy undoes what an earlier --legacy-rbac run (or upstream's
// kubectl steps) made: the service account leaves ClusterRoleBinding
// o.Binding (deleted when ppml made it and nobody else is left), and the
// non-expiring token Secret is deleted, which revokes its token.
func removeLegacy(ctx context.Context, c *kube.Client, o Options, rep *Report) error {
	crbs := c.Clientset.RbacV1().ClusterRoleBindings()
	cur, err := crbs.Get(ctx, o.Binding, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("read ClusterRoleBinding %s: %w", o.Binding, err)
	default:
		sub := subject(o)
		rest := slices.DeleteFunc(slices.Clone(cur.Subjects), func(s rbacv1.Subject) bool {
			return s.Kind == sub.Kind && s.Name == sub.Name && s.Namespace == sub.Namespace
		})
		if len(rest) == len(cur.Subjects) {
			break
		}
		note := fmt.Sprintf("%s/%s removed from clusterrole/%s (cluster-wide rights; --legacy-rbac keeps them)", o.Namespace, o.ServiceAccount, cur.RoleRef.Name)
		if len(rest) == 0 && maps.Equal(cur.Labels, managedLabels) {
			if err := crbs.Delete(ctx, o.Binding, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete ClusterRoleBinding %s: %w", o.Binding, err)
			}
			rep.add("ClusterRoleBinding", o.Binding, kube.Deleted, note)
		} else {
			upd := cur.DeepCopy()
			upd.Subjects = rest
			if _, err := crbs.Update(ctx, upd, metav1.UpdateOptions{FieldManager: kube.FieldManager}); err != nil {
				return fmt.Errorf("remove %s/%s from ClusterRoleBinding %s: %w", o.Namespace, o.ServiceAccount, o.Binding, err)
			}
			rep.add("ClusterRoleBinding", o.Binding, kube.Updated, note)
		}
	}
	secrets := c.Clientset.CoreV1().Secrets(o.Namespace)
	s, err := secrets.Get(ctx, o.TokenSecret, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("read Secret %s/%s: %w", o.Namespace, o.TokenSecret, err)
	case s.Type == corev1.SecretTypeServiceAccountToken && s.Annotations[corev1.ServiceAccountNameKey] == o.ServiceAccount:
		if err := secrets.Delete(ctx, o.TokenSecret, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete Secret %s/%s: %w", o.Namespace, o.TokenSecret, err)
		}
		rep.add("Secret", o.TokenSecret, kube.Deleted, "non-expiring token revoked (--legacy-rbac keeps it)")
	}
	return nil
}

// boundToken returns the token for the kubeconfig: the one kubeconfig-secret
// already holds while it authenticates as the service account and has more
// than half of o.TokenDuration left (and was issued to the service account
// as it is now), else a new one from the TokenRequest
// API.
func boundToken(ctx context.Context, c *kube.Client, o Options) (token string, expires time.Time, res kube.Result, note string, err error) {
	sa, err := c.Clientset.CoreV1().ServiceAccounts(o.Namespace).Get(ctx, o.ServiceAccount, metav1.GetOptions{})
	if err != nil {
		return "", time.Time{}, "", "", fmt.Errorf("read ServiceAccount %s/%s: %w", o.Namespace, o.ServiceAccount, err)
	}
	if cur, err := c.Clientset.CoreV1().Secrets(o.Namespace).Get(ctx, KubeconfigSecret, metav1.GetOptions{}); err == nil {
		if kc, err := clientcmd.Load(cur.Data[KubeconfigKey]); err == nil {
			if ai := kc.AuthInfos[o.User]; ai != nil && ai.Token != "" {
				exp, ok := TokenExpiry(ai.Token)
				if ok && time.Until(exp) > o.TokenDuration/2 && TokenServiceAccountUID(ai.Token) == string(sa.UID) {
					if user, err := ReviewToken(ctx, c, ai.Token); err == nil && user == ServiceAccountUser(o.Namespace, o.ServiceAccount) {
						return ai.Token, exp, kube.Unchanged, "expires " + exp.UTC().Format(time.RFC3339) + "; renewed by running ppml k8s setup again", nil
					}
				}
			}
		}
	}
	secs := int64(o.TokenDuration / time.Second)
	tr, err := c.Clientset.CoreV1().ServiceAccounts(o.Namespace).CreateToken(ctx, o.ServiceAccount,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		return "", time.Time{}, "", "", fmt.Errorf("request a token for ServiceAccount %s/%s (TokenRequest API): %w", o.Namespace, o.ServiceAccount, err)
	}
	exp := tr.Status.ExpirationTimestamp.Time
	return tr.Status.Token, exp, kube.Created, "expires " + exp.UTC().Format(time.RFC3339) + "; renew it by running ppml k8s setup again before then", nil
}

// ServiceAccountUser is the user name Kubernetes gives a service account.
func ServiceAccountUser(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// ReviewToken asks the API server (TokenReview) whom token authenticates;
// an error when it does not (expired, revoked, or the service account was
// recreated).
func ReviewToken(ctx context.Context, c *kube.Client, token string) (string, error) {
	r, err := c.Clientset.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("TokenReview: %w", err)
	}
	if !r.Status.Authenticated {
		msg := r.Status.Error
		if msg == "" {
			msg = "not authenticated"
		}
		return "", fmt.Errorf("the token does not authenticate: %s", msg)
	}
	return r.Status.User.Username, nil
}

// TokenExpiry reads the exp claim of a service-account JWT without
// verifying it (the API server does that, see ReviewToken); ok is false for
// a token without expiry (legacy token Secrets).
func TokenExpiry(token string) (time.Time, bool) {
	c := tokenClaims(token)
	if c.Exp == 0 {
		return time.Time{}, false
	}
	return time.Unix(c.Exp, 0), true
}

// TokenServiceAccountUID is the uid of the service account a bound token
// was issued for ("" for legacy tokens). The API server caches successful
// token reviews for a few seconds, so a recreated service account is
// recognised by its new uid.
func TokenServiceAccountUID(token string) string {
	return tokenClaims(token).Kubernetes.ServiceAccount.UID
}

type claims struct {
	Exp        int64 `json:"exp"`
	Kubernetes struct {
		ServiceAccount struct {
			UID string `json:"uid"`
		} `json:"serviceaccount"`
	} `json:"kubernetes.io"`
}

func tokenClaims(token string) claims {
	var c claims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c
	}
	if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
		_ = json.Unmarshal(b, &c)
	}
	return c
}
