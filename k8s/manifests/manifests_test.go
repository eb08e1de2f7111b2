package manifests_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/ppml-project/ppml/k8s/k8stest"
	"github.com/ppml-project/ppml/k8s/manifests"
)

var update = flag.Bool("update", false, "rewrite the generated files of deploy/")

const deployDir = "../../deploy"

// TestDeployFiles: the generated files in deploy/ are what Files returns.
func TestDeployFiles(t *testing.T) {
	files, err := manifests.Files()
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range files {
		p := filepath.Join(deployDir, path)
		if *update {
			if err := os.WriteFile(p, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("deploy/%s is not what k8s/manifests renders (run go test ./k8s/manifests -update): %v", path, err)
		}
	}
}

func TestRenderBadInput(t *testing.T) {
	for _, tc := range []struct {
		o    manifests.Options
		want string
	}{
		{manifests.Options{Replicas: 2}, "embedded store runs one replica"},
		{manifests.Options{DB: "postgres://x@y/z"}, "--db needs --postgres"},
		{manifests.Options{Postgres: true, DB: "mysql://x"}, "want a postgres:// URL"},
		{manifests.Options{Postgres: true, DB: "postgres://u:secret@h/db"}, "holds a password"},
		{manifests.Options{Postgres: true, Replicas: -1}, "want at least 1"},
		{manifests.Options{Postgres: true, SGX: true, EPC: "lots"}, "--epc"},
		{manifests.Options{Postgres: true, SGX: true, PCCSURL: "https://pccs:8081"}, "PPML_PCCS_URL"},
		{manifests.Options{SGX: true}, "--sgx needs --postgres"},
		{manifests.Options{Postgres: true, SGX: true, DB: "postgres://ppml@db/ppml"}, "--build-arg PPML_DB"},
		{manifests.Options{DBPeer: "app=pg"}, "--egress-db needs --postgres"},
		{manifests.Options{PCCSPeer: "not a selector!"}, "--egress-pccs"},
	} {
		_, err := manifests.Render(tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.o, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret@") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

func TestRenderVariants(t *testing.T) {
	b, err := manifests.Render(manifests.Options{Postgres: true, Replicas: 5, SGX: true, Namespace: "kms"})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"replicas: 5", "namespace: kms", "sgx.intel.com/epc: 2Gi", "sgx.intel.com/enclave: \"1\"", "sgx.intel.com/provision: \"1\"",
		"gramine-sgx", "PGPASSWORD", "kind: Deployment", "kind: PodDisruptionBudget", "kind: NetworkPolicy", "path: /readyz", "path: /healthz"} {
		if !strings.Contains(s, want) {
			t.Errorf("SGX render lacks %q", want)
		}
	}
	if strings.Contains(s, "root-key") || strings.Contains(s, "kind: StatefulSet") {
		t.Error("SGX/postgres render mounts the file root key or has a StatefulSet")
	}
	b, _ = manifests.Render(manifests.Options{PCCSURL: "https://pccs:8081"})
	s = string(b)
	for _, want := range []string{"kind: StatefulSet", "replicas: 1", "--pccs-url=https://pccs:8081", "--root-key-file=/etc/ppml/root-key/root.key", "secretName: ssl-keys", "volumeClaimTemplates"} {
		if !strings.Contains(s, want) {
			t.Errorf("embedded render lacks %q", want)
		}
	}
	sec, err := manifests.Secrets("", nil)
	if err != nil || len(sec) != 3 || len(sec[0].Data[manifests.RootKeyKey]) != 44 || sec[2].Name != manifests.MetricsTokenSecret || len(sec[2].Data[manifests.MetricsTokenKey]) != 43 {
		t.Fatalf("Secrets: %d %v", len(sec), err)
	}
	// /metrics requires the token (issue 13 item 9), and the ServiceMonitor sends it.
	if !strings.Contains(s, "--metrics-token-file=/etc/ppml/metrics/token") || !strings.Contains(s, "secretName: ppml-metrics-token") {
		t.Error("the pods do not require the metrics token")
	}
	b, _ = manifests.Render(manifests.Options{ServiceMonitor: true})
	sm := objects(t, b)["ServiceMonitor/ppml"]
	ep := sm["spec"].(map[string]any)["endpoints"].([]any)[0].(map[string]any)
	if bt, _ := ep["bearerTokenSecret"].(map[string]any); bt["name"] != manifests.MetricsTokenSecret || bt["key"] != manifests.MetricsTokenKey {
		t.Errorf("ServiceMonitor endpoint without the metrics token: %v", ep)
	}
}

// objects decodes a YAML stream into maps keyed by kind/name.
func objects(t *testing.T, b []byte) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		if m == nil {
			continue
		}
		md := m["metadata"].(map[string]any)
		out[m["kind"].(string)+"/"+md["name"].(string)] = m
	}
	return out
}

// objectsList decodes a YAML stream into its objects, in order.
func objectsList(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		if m != nil {
			out = append(out, m)
		}
	}
	return out
}

const serviceMonitorCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
`

// TestDeployAgainstAPIServer: kustomize builds each overlay into exactly
// the objects Render produces, and every manifest passes server-side
// dry-run on a real API server.
func TestDeployAgainstAPIServer(t *testing.T) {
	c := k8stest.Start(t)
	if out, err := c.Kubectl(t, []byte(serviceMonitorCRD), "apply", "-f", "-"); err != nil {
		t.Fatalf("CRD: %v\n%s", err, out)
	}
	if out, err := c.Kubectl(t, nil, "wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com", "--timeout=60s"); err != nil {
		t.Fatalf("CRD: %v\n%s", err, out)
	}
	names := make([]string, 0, len(manifests.Variants))
	for n := range manifests.Variants {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		o := manifests.Variants[name]
		t.Run(name, func(t *testing.T) {
			want, err := manifests.Render(o)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(deployDir, "overlays", name)
			built, err := c.Kubectl(t, nil, "kustomize", dir)
			if err != nil {
				t.Fatal(err)
			}
			got, exp := objects(t, built), objects(t, want)
			if len(got) != len(exp) {
				t.Errorf("kustomize %s: %d objects, Render: %d", name, len(got), len(exp))
			}
			for k, w := range exp {
				if g, ok := got[k]; !ok {
					t.Errorf("kustomize %s lacks %s", name, k)
				} else if !reflect.DeepEqual(g, w) {
					gb, _ := yaml.Marshal(g)
					wb, _ := yaml.Marshal(w)
					t.Errorf("kustomize %s: %s differs from Render\nkustomize:\n%s\nRender:\n%s", name, k, gb, wb)
				}
			}
			out, err := c.Kubectl(t, nil, "apply", "--dry-run=server", "-k", dir)
			if err != nil || strings.Count(string(out), "(server dry run)") != len(exp) {
				t.Fatalf("dry-run -k %s: %v\n%s", dir, err, out)
			}
		})
	}
	t.Run("sgx-device-plugin", func(t *testing.T) {
		stream := manifests.SGXDevicePlugin()
		docs := objectsList(t, stream)
		kinds := map[string]int{}
		var crds [][]byte
		for _, d := range docs {
			kinds[d["kind"].(string)]++
			if d["kind"] == "CustomResourceDefinition" || d["kind"] == "Namespace" {
				b, _ := yaml.Marshal(d)
				crds = append(crds, b)
			}
		}
		if kinds["DaemonSet"] != 2 || kinds["NodeFeatureRule"] != 1 || kinds["CustomResourceDefinition"] != 3 || kinds["Deployment"] != 2 {
			t.Fatalf("objects %v: want the plugin and NFD worker DaemonSets, NFD master and gc, 3 NFD CRDs, the SGX rule", kinds)
		}
		if !strings.Contains(string(stream), "image: intel/intel-sgx-plugin:0.36.0") || !strings.Contains(string(stream), "node-feature-discovery:v0.17.1") ||
			!strings.Contains(string(stream), "sgx.intel.com/epc: '@cpu.security.sgx.epc'") || !strings.Contains(string(stream), `intel.feature.node.kubernetes.io/sgx: "true"`) {
			t.Fatal("not the pinned releases, or the EPC resource / node label is missing")
		}
		// The CRDs and the namespace exist before the rest can be checked,
		// as on a cluster after the first apply.
		if out, err := c.Kubectl(t, bytes.Join(crds, []byte("---\n")), "apply", "-f", "-"); err != nil {
			t.Fatalf("CRDs: %v\n%s", err, out)
		}
		if out, err := c.Kubectl(t, nil, "wait", "--for=condition=Established", "crd/nodefeaturerules.nfd.k8s-sigs.io", "--timeout=60s"); err != nil {
			t.Fatalf("CRD: %v\n%s", err, out)
		}
		out, err := c.Kubectl(t, stream, "apply", "--dry-run=server", "-f", "-")
		if err != nil || strings.Count(string(out), "(server dry run)") != len(docs) {
			t.Fatalf("dry-run --sgx-device-plugin (%d objects): %v\n%s", len(docs), err, out)
		}
	})
	t.Run("render", func(t *testing.T) {
		for _, o := range []manifests.Options{
			{ServiceMonitor: true, PCCSURL: "https://pccs.example:8081"},
			{Postgres: true, Replicas: 2, ServiceMonitor: true, Namespace: "default", DB: "postgres://ppml@db.example:5432/ppml?sslmode=verify-full"},
			{SGX: true, Postgres: true, EPC: "512Mi", Image: "registry.example/ppml-gramine:1", PCCSPeer: "10.1.2.3/32", DBPeer: "app=db"},
		} {
			b, err := manifests.Render(o)
			if err != nil {
				t.Fatal(err)
			}
			sec, _ := manifests.Secrets("", nil)
			sb, _ := manifests.Marshal(sec[0], sec[1])
			b = append(append(b, "---\n"...), sb...)
			out, err := c.Kubectl(t, b, "apply", "--dry-run=server", "-f", "-")
			if err != nil || !strings.Contains(string(out), "(server dry run)") {
				t.Fatalf("dry-run %+v: %v\n%s", o, err, out)
			}
		}
	})
}
