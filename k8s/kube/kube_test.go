package kube_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ppml-project/ppml/k8s/k8stest"
	"github.com/ppml-project/ppml/k8s/kube"
	"github.com/ppml-project/ppml/k8s/material"
)

const password = "cluster-Test-pw"

// TestSecretsAgainstAPIServer runs against a real kube-apiserver: the
// generated manifests apply cleanly with kubectl (server-side dry-run,
// client-side and server-side apply), and kube.ApplySecret is idempotent.
func TestSecretsAgainstAPIServer(t *testing.T) {
	c := k8stest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	keys, err := material.GenerateKeys(material.KeysOptions{Password: []byte(password), DNSNames: []string{"bigdl-kms"}, IncludePlainKey: true})
	if err != nil {
		t.Fatal(err)
	}
	pf, err := material.GeneratePasswordFiles([]byte(password), nil)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	kd, pd := filepath.Join(root, "keys"), filepath.Join(root, "password")
	if err := material.WriteKeysDir(kd, keys, "", false); err != nil {
		t.Fatal(err)
	}
	if err := material.WritePasswordDir(pd, pf, []byte(password), "", false); err != nil {
		t.Fatal(err)
	}
	manifests := []struct{ file, secret string }{
		{filepath.Join(kd, material.KeysManifest), material.SSLKeysSecret},
		{filepath.Join(pd, material.PasswordManifest), material.SSLPasswordSecret},
		{filepath.Join(pd, material.SparkSecretManifest), material.SparkSecret},
	}

	t.Run("kubectl", func(t *testing.T) {
		for _, m := range manifests {
			out, err := c.Kubectl(t, nil, "apply", "--dry-run=server", "-f", m.file)
			if err != nil || !strings.Contains(string(out), "secret/"+m.secret+" created (server dry run)") {
				t.Fatalf("server dry-run of %s: %v\n%s", m.file, err, out)
			}
			if _, err := c.Clientset.CoreV1().Secrets("default").Get(ctx, m.secret, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Fatalf("dry-run persisted %s: %v", m.secret, err)
			}
			out, err = c.Kubectl(t, nil, "apply", "-f", m.file)
			if err != nil || !strings.Contains(string(out), "secret/"+m.secret+" created") {
				t.Fatalf("apply %s: %v\n%s", m.file, err, out)
			}
			out, err = c.Kubectl(t, nil, "apply", "-f", m.file)
			if err != nil || !strings.Contains(string(out), "unchanged") {
				t.Fatalf("re-apply %s: %v\n%s", m.file, err, out)
			}
			out, err = c.Kubectl(t, nil, "apply", "--server-side", "--force-conflicts", "-f", m.file)
			if err != nil {
				t.Fatalf("server-side apply %s: %v\n%s", m.file, err, out)
			}
		}
		s, err := c.Clientset.CoreV1().Secrets("default").Get(ctx, material.SSLKeysSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range keys.Files() {
			if !bytes.Equal(s.Data[name], want) {
				t.Errorf("ssl-keys/%s in the cluster differs from the generated file", name)
			}
		}
		if len(s.Data) != 6 || s.Type != corev1.SecretTypeOpaque {
			t.Errorf("ssl-keys: %d keys, type %s", len(s.Data), s.Type)
		}
		// One password: ssl-password decodes to spark-secret/secret.
		sp, err := c.Clientset.CoreV1().Secrets("default").Get(ctx, material.SSLPasswordSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ss, err := c.Clientset.CoreV1().Secrets("default").Get(ctx, material.SparkSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := material.RecoverPassword(sp.Data[material.KeyTxtFile], sp.Data[material.OutputBinFile])
		if err != nil || string(got) != string(ss.Data[material.SparkSecretKey]) || string(got) != password {
			t.Fatalf("ssl-password and spark-secret disagree: %v", err)
		}
	})

	t.Run("ApplySecret", func(t *testing.T) {
		if _, err := c.Clientset.CoreV1().Namespaces().Create(ctx,
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "jobs"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Client from the kubeconfig file, as --kubeconfig does; the
		// namespace override is used for objects without one.
		kc, err := kube.Load(c.Kubeconfig, "jobs")
		if err != nil {
			t.Fatal(err)
		}
		if kc.Namespace != "jobs" {
			t.Fatalf("namespace %q", kc.Namespace)
		}
		sec := keys.Secret("")
		if r, err := kc.ApplySecret(ctx, sec, true); err != nil || r != kube.Created {
			t.Fatalf("dry-run: %v %v", r, err)
		}
		if _, err := c.Clientset.CoreV1().Secrets("jobs").Get(ctx, material.SSLKeysSecret, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("dry-run persisted: %v", err)
		}
		for i, want := range []kube.Result{kube.Created, kube.Unchanged, kube.Unchanged} {
			r, err := kc.ApplySecret(ctx, sec, false)
			if err != nil || r != want {
				t.Fatalf("apply #%d: %v %v, want %v", i+1, r, err, want)
			}
		}
		first, err := c.Clientset.CoreV1().Secrets("jobs").Get(ctx, material.SSLKeysSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if first.Labels["app.kubernetes.io/managed-by"] != "ppml" {
			t.Fatalf("labels %v", first.Labels)
		}

		// Regenerated material without the plain key replaces the data.
		k2, err := material.GenerateKeys(material.KeysOptions{Password: []byte(password)})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := kc.ApplySecret(ctx, k2.Secret(""), false); err != nil || r != kube.Updated {
			t.Fatalf("update: %v %v", r, err)
		}
		got, err := c.Clientset.CoreV1().Secrets("jobs").Get(ctx, material.SSLKeysSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got.Data[material.ServerKeyFile]; ok || len(got.Data) != 4 || !bytes.Equal(got.Data[material.JKSFile], k2.JKS) {
			t.Fatalf("after update: keys %d", len(got.Data))
		}
		if r, err := kc.ApplySecret(ctx, k2.Secret("jobs"), false); err != nil || r != kube.Unchanged {
			t.Fatalf("explicit namespace: %v %v", r, err)
		}

		// A Secret of another type is not silently replaced.
		if _, err := c.Clientset.CoreV1().Secrets("jobs").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: material.SparkSecret},
			Type:       corev1.SecretTypeBasicAuth,
			Data:       map[string][]byte{"username": []byte("u")},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err = kc.ApplySecret(ctx, material.SparkSecretFor([]byte(password), ""), false)
		if err == nil || !strings.Contains(err.Error(), "jobs/spark-secret") || !strings.Contains(err.Error(), "type") {
			t.Fatalf("type change: %v", err)
		}
		if strings.Contains(err.Error(), password) {
			t.Fatal("error leaks the password")
		}
	})

	t.Run("LoadFromKUBECONFIG", func(t *testing.T) {
		t.Setenv("KUBECONFIG", c.Kubeconfig)
		kc, err := kube.Load("", "")
		if err != nil {
			t.Fatal(err)
		}
		if kc.Namespace != "default" {
			t.Fatalf("namespace %q", kc.Namespace)
		}
		if _, err := kc.Clientset.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("TokenController", func(t *testing.T) {
		// The helper's kube-controller-manager fills service-account token
		// Secrets (needed by the RBAC/kubeconfig tooling).
		cs := c.Clientset
		if _, err := cs.CoreV1().ServiceAccounts("default").Create(ctx,
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "spark"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "spark-service-account-token",
				Annotations: map[string]string{corev1.ServiceAccountNameKey: "spark"}},
			Type: corev1.SecretTypeServiceAccountToken,
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			s, err := cs.CoreV1().Secrets("default").Get(ctx, "spark-service-account-token", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Data[corev1.ServiceAccountTokenKey]) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("token controller did not fill the token")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

func TestLoadWithoutConfig(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	t.Setenv("HOME", t.TempDir())
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	_, err := kube.Load("", "")
	if err == nil {
		t.Fatal("no error without any configuration")
	}
	_, err = kube.Load(filepath.Join(t.TempDir(), "missing.kubeconfig"), "")
	if err == nil || !strings.Contains(err.Error(), "missing.kubeconfig") {
		t.Fatalf("missing explicit kubeconfig: %v", err)
	}
}
