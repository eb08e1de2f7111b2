package setup

import (
	"bytes"
	"fmt"

	"sigs.k8s.io/yaml"
)

// Redacted stands for Secret values in Manifests.
const Redacted = "REDACTED"

// Manifests renders what Setup would create, as a YAML stream, without
// contacting the cluster or the KMS. Secret values are never printed:
// stringData shows each key with the value REDACTED (or, for kms-secret,
// the app and policy ids, which are not secret); the token Secret is filled
// by Kubernetes; the TokenRequest token only exists when Setup runs.
func Manifests(opts Options) ([]byte, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	secret := func(name string, data map[string]string, comment string) (string, map[string]any) {
		return comment, map[string]any{
			"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
			"metadata":   map[string]any{"name": name, "namespace": o.Namespace, "labels": managedLabels},
			"stringData": data,
		}
	}
	kms := map[string]string{KeyAppID: Redacted, KeyAPIKey: Redacted, KeyPolicyID: o.KMS.PolicyID}
	kmsComment := "# kms-secret: kept when it exists and is complete, else enrolled with --kms-url"
	if o.KMS.AppID != "" {
		kms[KeyAppID] = o.KMS.AppID
		kmsComment = "# kms-secret: from the credentials given"
	}
	type doc struct {
		comment string
		obj     any
	}
	docs := []doc{
		{"# ServiceAccount used by the Spark driver (spark.kubernetes.authenticate.driver.serviceAccountName)", serviceAccount(o)},
	}
	if o.LegacyRBAC {
		docs = append(docs,
			doc{"# " + LegacyWarning, clusterBinding(o)},
			doc{"# Filled in by Kubernetes with a non-expiring token of " + o.ServiceAccount, tokenSecret(o)})
	} else {
		docs = append(docs,
			doc{"# Only what the Spark driver needs in its namespace (no Secrets)", role(o)},
			doc{"", roleBinding(o)})
	}
	c, s := secret("spark-secret", map[string]string{"secret": Redacted}, "# spark-secret: the password of ssl-keys/ssl-password (kept when it exists)")
	docs = append(docs, doc{c, s})
	c, s = secret(KMSSecret, kms, kmsComment)
	docs = append(docs, doc{c, s})
	c, s = secret(KubeconfigSecret, map[string]string{KubeconfigKey: Redacted},
		fmt.Sprintf("# kubeconfig-secret: flattened kubeconfig, user %s with the token (TokenRequest, %s unless --legacy-rbac), context %s, cluster %s", o.User, o.TokenDuration, o.Context, o.ClusterName))
	docs = append(docs, doc{c, s})

	var buf bytes.Buffer
	for i, d := range docs {
		b, err := yaml.Marshal(d.obj)
		if err != nil {
			return nil, err
		}
		b = bytes.ReplaceAll(b, []byte("  creationTimestamp: null\n"), nil)
		if i > 0 {
			buf.WriteString("---\n")
		}
		if d.comment != "" {
			buf.WriteString(d.comment + "\n")
		}
		buf.Write(b)
	}
	return buf.Bytes(), nil
}
