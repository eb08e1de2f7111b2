// Package kube builds a Kubernetes client the way kubectl does and applies
// the Secrets that ppml generates.
package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
)

// FieldManager is the manager name recorded on objects ppml writes.
const FieldManager = "ppml"

// Client is a clientset with the namespace used when an object has none.
type Client struct {
	Config    *rest.Config
	Clientset kubernetes.Interface
	Namespace string
}

// Load builds a client like kubectl: from kubeconfig when not empty
// (--kubeconfig), else from $KUBECONFIG, else ~/.kube/config, else the
// in-cluster service account. namespace overrides the context's namespace
// when not empty; the fallback is "default".
func Load(kubeconfig, namespace string) (*Client, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, errors.New("no Kubernetes configuration: use --kubeconfig, set KUBECONFIG, create ~/.kube/config or run in a pod")
		}
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	if namespace == "" {
		namespace, _, err = cc.Namespace()
		if err != nil {
			return nil, fmt.Errorf("kubeconfig namespace: %w", err)
		}
		if namespace == "" {
			namespace = metav1.NamespaceDefault
		}
	}
	return New(cfg, namespace)
}

// New builds a client from a rest.Config.
func New(cfg *rest.Config, namespace string) (*Client, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	if namespace == "" {
		namespace = metav1.NamespaceDefault
	}
	return &Client{Config: cfg, Clientset: cs, Namespace: namespace}, nil
}

// Result says what ApplySecret did.
type Result string

const (
	Created   Result = "created"
	Updated   Result = "updated"
	Unchanged Result = "unchanged"
	// Deleted: an object an earlier run made is no longer wanted.
	Deleted Result = "deleted"
)

// ApplySecret creates the Secret or replaces the data, type-compatible
// labels and annotations of an existing one (keys that are not in s are
// removed, so a regenerated Secret holds exactly the new material). An
// object without namespace goes to c.Namespace. With dryRun the API server
// validates and admits the change without persisting it. Errors name the
// Secret, never its data.
func (c *Client) ApplySecret(ctx context.Context, s *corev1.Secret, dryRun bool) (Result, error) {
	ns := s.Namespace
	if ns == "" {
		ns = c.Namespace
	}
	ref := ns + "/" + s.Name
	var dry []string
	if dryRun {
		dry = []string{metav1.DryRunAll}
	}
	secrets := c.Clientset.CoreV1().Secrets(ns)
	var res Result
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := secrets.Get(ctx, s.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			obj := s.DeepCopy()
			obj.Namespace = ns
			obj.ResourceVersion = ""
			if _, err := secrets.Create(ctx, obj, metav1.CreateOptions{DryRun: dry, FieldManager: FieldManager}); err != nil {
				if apierrors.IsAlreadyExists(err) {
					return apierrors.NewConflict(corev1.Resource("secrets"), s.Name, err)
				}
				return err
			}
			res = Created
			return nil
		}
		if err != nil {
			return err
		}
		typ := s.Type
		if typ == "" {
			typ = corev1.SecretTypeOpaque
		}
		if cur.Type != typ {
			return fmt.Errorf("exists with type %q, not %q (the type cannot change; delete the Secret first)", cur.Type, typ)
		}
		want := cur.DeepCopy()
		want.Data = s.Data
		want.StringData = nil
		want.Immutable = s.Immutable
		if len(s.Labels) > 0 && want.Labels == nil {
			want.Labels = map[string]string{}
		}
		maps.Copy(want.Labels, s.Labels)
		if len(s.Annotations) > 0 && want.Annotations == nil {
			want.Annotations = map[string]string{}
		}
		maps.Copy(want.Annotations, s.Annotations)
		if sameSecret(cur, want) {
			res = Unchanged
			return nil
		}
		if _, err := secrets.Update(ctx, want, metav1.UpdateOptions{DryRun: dry, FieldManager: FieldManager}); err != nil {
			return err
		}
		res = Updated
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("apply Secret %s: %w", ref, err)
	}
	return res, nil
}

func sameSecret(a, b *corev1.Secret) bool {
	if len(a.Data) != len(b.Data) || !maps.Equal(a.Labels, b.Labels) || !maps.Equal(a.Annotations, b.Annotations) {
		return false
	}
	if (a.Immutable == nil) != (b.Immutable == nil) || (a.Immutable != nil && *a.Immutable != *b.Immutable) {
		return false
	}
	for k, v := range a.Data {
		w, ok := b.Data[k]
		if !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}
