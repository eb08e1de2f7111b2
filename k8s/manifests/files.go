package manifests

import "fmt"

// Variants are the kustomize overlays in deploy/overlays and the Options
// that render the same objects.
var Variants = map[string]Options{
	"embedded": {},
	"postgres": {Postgres: true, Replicas: DefaultReplicas},
	"sgx":      {Postgres: true, Replicas: DefaultReplicas, SGX: true},
}

const generatedHeader = "# Generated from k8s/manifests by `go test ./k8s/manifests -update`; do not edit.\n"

// Files returns the generated files of deploy/ (paths relative to it): the
// base objects and each overlay's workload. The kustomization.yaml files
// and the SGX patch are written by hand; a test checks that kustomize
// builds the same objects as Render.
func Files() (map[string][]byte, error) {
	out := map[string][]byte{}
	put := func(path string, objs ...any) error {
		b, err := Marshal(objs...)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		out[path] = append([]byte(generatedHeader), b...)
		return nil
	}
	base, work, err := Objects(Variants["embedded"])
	if err != nil {
		return nil, err
	}
	if len(base) != 7 {
		return nil, fmt.Errorf("deploy: %d base objects, want 7 (update Files)", len(base))
	}
	for _, f := range []struct {
		path string
		objs []any
	}{
		{"base/serviceaccount.yaml", base[0:1]},
		{"base/services.yaml", base[1:5]},
		{"base/poddisruptionbudget.yaml", base[5:6]},
		{"base/networkpolicy.yaml", base[6:7]},
		{"overlays/embedded/statefulset.yaml", work},
	} {
		if err := put(f.path, f.objs...); err != nil {
			return nil, err
		}
	}
	_, work, err = Objects(Variants["postgres"])
	if err != nil {
		return nil, err
	}
	if err := put("overlays/postgres/deployment.yaml", work...); err != nil {
		return nil, err
	}
	_, work, err = Objects(Options{ServiceMonitor: true})
	if err != nil {
		return nil, err
	}
	return out, put("components/monitoring/servicemonitor.yaml", work[len(work)-1])
}
