package material

import (
	"bytes"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Secret names the images mount or reference (see the Kubernetes contract).
const (
	SSLKeysSecret     = "ssl-keys"
	SSLPasswordSecret = "ssl-password"
	SparkSecret       = "spark-secret"
)

// Labels put on every generated Secret.
var Labels = map[string]string{"app.kubernetes.io/managed-by": "ppml"}

// NewSecret returns an Opaque Secret with the given data. An empty namespace
// leaves metadata.namespace unset, so `kubectl apply -n NS` and the current
// context decide.
func NewSecret(name, namespace string, data map[string][]byte) *corev1.Secret {
	labels := make(map[string]string, len(Labels))
	for k, v := range Labels {
		labels[k] = v
	}
	d := make(map[string][]byte, len(data))
	for k, v := range data {
		d[k] = v
	}
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Type:       corev1.SecretTypeOpaque,
		Data:       d,
	}
}

// KeysSecret is the ssl-keys Secret.
func (k *Keys) Secret(namespace string) *corev1.Secret {
	return NewSecret(SSLKeysSecret, namespace, k.Files())
}

// Secret is the ssl-password Secret.
func (p *PasswordFiles) Secret(namespace string) *corev1.Secret {
	return NewSecret(SSLPasswordSecret, namespace, p.Files())
}

// SparkSecretFor is the spark-secret Secret: key "secret" = the password
// (consumed as SPARK_AUTHENTICATE_SECRET).
func SparkSecretFor(password []byte, namespace string) *corev1.Secret {
	return NewSecret(SparkSecret, namespace, map[string][]byte{SparkSecretKey: password})
}

// ManifestYAML renders Secrets as a YAML stream ("---" between documents),
// the form `kubectl apply -f` takes. Values are base64 in data, as usual.
func ManifestYAML(secrets ...*corev1.Secret) ([]byte, error) {
	var buf bytes.Buffer
	for i, s := range secrets {
		// Marshal a plain map so that empty fields (creationTimestamp: null)
		// do not appear in the file.
		meta := map[string]any{"name": s.Name}
		if s.Namespace != "" {
			meta["namespace"] = s.Namespace
		}
		if len(s.Labels) > 0 {
			meta["labels"] = s.Labels
		}
		if len(s.Annotations) > 0 {
			meta["annotations"] = s.Annotations
		}
		doc := map[string]any{
			"apiVersion": "v1",
			"kind":       "Secret",
			"metadata":   meta,
			"type":       string(s.Type),
			"data":       s.Data, // []byte values marshal as base64
		}
		b, err := yaml.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("render Secret %s: %w", s.Name, err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

// ParseManifest decodes a YAML stream written by ManifestYAML (or any stream
// of v1 Secrets) back into Secrets.
func ParseManifest(data []byte) ([]*corev1.Secret, error) {
	var out []*corev1.Secret
	for i, doc := range splitYAML(data) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var s corev1.Secret
		if err := yaml.UnmarshalStrict(doc, &s); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if s.APIVersion != "v1" || s.Kind != "Secret" {
			return nil, fmt.Errorf("document %d: %s/%s is not a v1 Secret", i+1, s.APIVersion, s.Kind)
		}
		out = append(out, &s)
	}
	return out, nil
}

func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	var cur []byte
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if t := bytes.TrimRight(line, "\r\n"); bytes.Equal(t, []byte("---")) {
			docs = append(docs, cur)
			cur = nil
			continue
		}
		cur = append(cur, line...)
	}
	return append(docs, cur)
}
