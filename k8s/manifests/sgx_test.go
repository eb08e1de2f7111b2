package manifests_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/ppml-project/ppml/k8s/image"
	"github.com/ppml-project/ppml/k8s/manifests"
)

// No SGX machine runs here, so the SGX deployment is checked as text: the
// Gramine manifest template rendered with the Dockerfile's defaults and
// parsed as TOML, the Dockerfile, and the rendered Kubernetes objects. Each
// subtest is a defect that would stop or weaken a real deployment; it fails
// if the defect comes back.

const gramineDir = "../../deploy/gramine"

// dockerArgs returns the ARG defaults of the Gramine Dockerfile and the
// -Dname="$ARG" pairs of its gramine-manifest call.
func dockerArgs(t *testing.T) (args, defines map[string]string, text string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(gramineDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text = string(b)
	args = map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^ARG ([A-Z_0-9]+)(?:=(.*))?$`).FindAllStringSubmatch(text, -1) {
		args[m[1]] = strings.Trim(m[2], `"`)
	}
	defines = map[string]string{}
	for _, m := range regexp.MustCompile(`-D([a-z_0-9]+)="?([^" ]*)"?`).FindAllStringSubmatch(text, -1) {
		defines[m[1]] = m[2]
	}
	return args, defines, text
}

// gramineManifest renders ppml.manifest.template the way the Dockerfile
// calls gramine-manifest (required build arguments given example values)
// and parses it.
func gramineManifest(t *testing.T) map[string]any {
	t.Helper()
	args, defines, _ := dockerArgs(t)
	examples := map[string]string{
		"PPML_DB":            "postgres://ppml@postgres:5432/ppml?sslmode=verify-full&sslrootcert=/etc/ppml/postgres/ca.crt",
		"PPML_PCCS_URL":      "https://pccs.example:8081/sgx/certification/v4/",
		"ADMIN_TOKEN_SHA256": strings.Repeat("ab", 32),
	}
	vals := map[string]string{}
	for name, v := range defines {
		if strings.HasPrefix(v, "$") {
			arg := strings.TrimPrefix(v, "$")
			d, ok := args[arg]
			if !ok {
				t.Fatalf("gramine-manifest -D%s=$%s: no ARG %s in the Dockerfile", name, arg, arg)
			}
			if d == "" {
				if d, ok = examples[arg]; !ok {
					t.Fatalf("ARG %s has no default and no example here", arg)
				}
			}
			v = d
		}
		vals[name] = v
	}
	b, err := os.ReadFile(filepath.Join(gramineDir, "ppml.manifest.template"))
	if err != nil {
		t.Fatal(err)
	}
	s := regexp.MustCompile(`\{\{\s*([a-z_0-9]+)\s*\}\}`).ReplaceAllStringFunc(string(b), func(m string) string {
		name := strings.Trim(m, "{} ")
		v, ok := vals[name]
		if !ok {
			t.Errorf("template variable %s is not passed by the Dockerfile's gramine-manifest call", name)
		}
		return v
	})
	if strings.Contains(s, "{%") || strings.Contains(s, "{{") {
		t.Fatal("template logic left after rendering: keep the template a plain TOML file with {{ variables }}")
	}
	var m map[string]any
	if _, err := toml.Decode(s, &m); err != nil {
		t.Fatalf("the rendered Gramine manifest is not TOML: %v", err)
	}
	return m
}

func get(m map[string]any, path string) any {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

func argv(t *testing.T, m map[string]any) []string {
	t.Helper()
	raw, _ := get(m, "loader.argv").([]any)
	var out []string
	for _, a := range raw {
		out = append(out, a.(string))
	}
	if len(out) < 2 || out[1] != "serve" {
		t.Fatalf("loader.argv %v: want ppml serve ...", out)
	}
	return out
}

func flagValue(argv []string, name string) (string, bool) {
	for _, a := range argv {
		if a == name {
			return "", true
		}
		if strings.HasPrefix(a, name+"=") {
			return strings.TrimPrefix(a, name+"="), true
		}
	}
	return "", false
}

// bytesOf parses Gramine sizes ("2G") and Go's GOMEMLIMIT ("1GiB").
func bytesOf(t *testing.T, s string) int64 {
	t.Helper()
	s = strings.TrimSuffix(strings.TrimSuffix(s, "iB"), "B")
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("size %q: %v", s, err)
	}
	return n * mult
}

// sgxDeployment renders the SGX variant and returns its pod template.
func sgxDeployment(t *testing.T) (objs map[string]map[string]any, tmpl map[string]any) {
	t.Helper()
	b, err := manifests.Render(manifests.Variants["sgx"])
	if err != nil {
		t.Fatal(err)
	}
	objs = objects(t, b)
	d := objs["Deployment/ppml"]
	return objs, get(d, "spec.template").(map[string]any)
}

func container(tmpl map[string]any) map[string]any {
	return get(tmpl, "spec.containers").([]any)[0].(map[string]any)
}

func TestSGXDeployment(t *testing.T) {
	m := gramineManifest(t)
	av := argv(t, m)
	_, tmpl := sgxDeployment(t)
	c := container(tmpl)

	t.Run("AESM socket and quote provider", func(t *testing.T) {
		if get(m, "sgx.remote_attestation") != "dcap" {
			t.Fatal("sgx.remote_attestation is not dcap")
		}
		if get(tmpl, "metadata.annotations").(map[string]any)["sgx.intel.com/quote-provider"] != "aesmd" {
			t.Error("no sgx.intel.com/quote-provider: aesmd annotation")
		}
		found := false
		for _, v := range get(tmpl, "spec.volumes").([]any) {
			if get(v.(map[string]any), "hostPath.path") == "/var/run/aesmd" {
				found = true
			}
		}
		mounted := false
		for _, vm := range c["volumeMounts"].([]any) {
			if vm.(map[string]any)["mountPath"] == "/var/run/aesmd" {
				mounted = true
			}
		}
		if !found || !mounted {
			t.Error("the AESM socket directory /var/run/aesmd is not mounted from the host: Gramine cannot get a DCAP quote")
		}
	})
	t.Run("DNS in the enclave", func(t *testing.T) {
		if get(m, "fs.root.uri") != "file:/" {
			t.Error("no fs.root: /etc and the host files are not visible")
		}
		if get(m, "sys.enable_extra_runtime_domain_names_conf") != true {
			t.Error("sys.enable_extra_runtime_domain_names_conf is not true: no /etc/resolv.conf, postgres and the PCCS do not resolve")
		}
	})
	t.Run("GOMAXPROCS and GOMEMLIMIT against the enclave", func(t *testing.T) {
		procs, err := strconv.Atoi(fmt.Sprint(get(m, "loader.env.GOMAXPROCS")))
		if err != nil || procs < 1 {
			t.Fatalf("loader.env.GOMAXPROCS = %v: pin it, else Go sizes itself to every host CPU", get(m, "loader.env.GOMAXPROCS"))
		}
		maxThreads, _ := get(m, "sgx.max_threads").(int64)
		// Gramine's helpers (IPC, async, TLS handshake) and the Go
		// runtime's own threads (sysmon, template thread, threads blocked
		// in system calls) come on top of GOMAXPROCS.
		if need := int64(procs) + 3 + 16; maxThreads < need {
			t.Errorf("sgx.max_threads = %d, GOMAXPROCS = %d: want at least %d", maxThreads, procs, need)
		}
		limit := bytesOf(t, fmt.Sprint(get(m, "loader.env.GOMEMLIMIT")))
		size := bytesOf(t, fmt.Sprint(get(m, "sgx.enclave_size")))
		if limit <= 0 || limit > size*3/4 {
			t.Errorf("GOMEMLIMIT %d bytes, enclave %d: keep the heap limit below 3/4 of the enclave", limit, size)
		}
	})
	t.Run("store: PostgreSQL, never a silently dropped --db", func(t *testing.T) {
		if db, ok := flagValue(av, "--db"); !ok || !strings.HasPrefix(db, "postgres://") {
			t.Errorf("argv %v: the enclave must use PostgreSQL (SQLite WAL maps -shm MAP_SHARED, which Gramine-SGX refuses)", av)
		}
		if _, err := manifests.Render(manifests.Options{SGX: true}); err == nil {
			t.Error("--sgx without --postgres renders")
		}
		if _, err := manifests.Render(manifests.Options{SGX: true, Postgres: true, DB: "postgres://x@y/z"}); err == nil {
			t.Error("--sgx --db renders, and the URL would be ignored")
		}
	})
	t.Run("EPC request is the enclave size", func(t *testing.T) {
		if get(m, "sgx.edmm_enable") != false {
			t.Fatal("sgx.edmm_enable is not false: with EDMM the enclave grows on demand and the EPC request below must be reconsidered")
		}
		size := bytesOf(t, fmt.Sprint(get(m, "sgx.enclave_size")))
		for _, kind := range []string{"requests", "limits"} {
			q, err := resource.ParseQuantity(fmt.Sprint(get(c, "resources."+kind).(map[string]any)["sgx.intel.com/epc"]))
			if err != nil || q.Value() != size {
				t.Errorf("%s sgx.intel.com/epc %v, the enclave takes %d bytes", kind, q.String(), size)
			}
		}
		if manifests.DefaultEPC != strings.TrimSuffix(fmt.Sprint(get(m, "sgx.enclave_size")), "G")+"Gi" {
			t.Errorf("DefaultEPC %s does not match sgx.enclave_size %v", manifests.DefaultEPC, get(m, "sgx.enclave_size"))
		}
	})
	t.Run("pinned Gramine >= 1.8 base", func(t *testing.T) {
		args, _, text := dockerArgs(t)
		g := regexp.MustCompile(`^gramineproject/gramine:(\d+)\.(\d+)-[a-z]+(@sha256:[0-9a-f]{64})?$`).FindStringSubmatch(args["GRAMINE_IMAGE"])
		if g == nil {
			t.Fatalf("GRAMINE_IMAGE %q: want gramineproject/gramine:<major>.<minor>-<distro>[@sha256:...], not a floating tag", args["GRAMINE_IMAGE"])
		}
		if major, _ := strconv.Atoi(g[1]); major < 1 || (major == 1 && atoi(g[2]) < 8) {
			t.Errorf("Gramine %s.%s: the manifest has no loader.entrypoint and needs >= 1.8", g[1], g[2])
		}
		if !regexp.MustCompile(`^golang:\d+\.\d+\.\d+-[a-z]+(@sha256:[0-9a-f]{64})?$`).MatchString(args["GO_IMAGE"]) {
			t.Errorf("GO_IMAGE %q: pin the exact Go release", args["GO_IMAGE"])
		}
		for _, l := range regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(text, -1) {
			if strings.Contains(l[1], "latest") || strings.Contains(l[1], "stable") {
				t.Errorf("FROM %s: floating base", l[1])
			}
		}
	})
	t.Run("no insecure__ options", func(t *testing.T) {
		var walk func(prefix string, v any)
		walk = func(prefix string, v any) {
			if mm, ok := v.(map[string]any); ok {
				for k, x := range mm {
					if strings.Contains(k, "insecure__") {
						t.Errorf("%s%s is set: Gramine emulates eventfd for one process; pass-through options let the host in", prefix, k)
					}
					walk(prefix+k+".", x)
				}
			}
		}
		walk("", m)
	})
	t.Run("secrets stay in the enclave (RA-TLS, no host admin credential)", func(t *testing.T) {
		for _, f := range []string{"--tls-key", "--tls-cert", "--admin-token-file", "--root-key-file"} {
			if _, ok := flagValue(av, f); ok {
				t.Errorf("argv has %s: the host would supply it", f)
			}
		}
		if _, ok := flagValue(av, "--tls-in-memory"); !ok {
			t.Error("argv lacks --tls-in-memory: the TLS key must be generated inside the enclave")
		}
		if h, ok := flagValue(av, "--admin-token-sha256"); !ok || len(h) != 64 {
			t.Error("argv lacks --admin-token-sha256 (the measured hash of the admin token)")
		}
		if _, ok := flagValue(av, "--self-attestation"); !ok {
			t.Error("argv lacks --self-attestation: clients cannot attest the service")
		}
		allowed, _ := get(m, "sgx.allowed_files").([]any)
		for _, a := range allowed {
			if a != "file:/var/log/ppml/" {
				t.Errorf("sgx.allowed_files has %v: only the audit log may come from the host", a)
			}
		}
		for _, v := range get(tmpl, "spec.volumes").([]any) {
			if sec := get(v.(map[string]any), "secret"); sec != nil {
				t.Errorf("the SGX pod mounts Secret volume %v into an enclave that must not read secrets from the host", v)
			}
		}
		if get(m, "sgx.debug") != false {
			t.Error("sgx.debug is not false")
		}
	})
	t.Run("data directory inside the enclave", func(t *testing.T) {
		dd, _ := flagValue(av, "--data-dir")
		ok := false
		for _, mt := range get(m, "fs.mounts").([]any) {
			mm := mt.(map[string]any)
			if mm["path"] == dd && mm["type"] == "tmpfs" {
				ok = true
			}
		}
		if !ok {
			t.Errorf("--data-dir %s is not an in-enclave tmpfs: the host would read and roll back its files", dd)
		}
	})
	t.Run("SIGTERM reaches ppml serve", func(t *testing.T) {
		if get(m, "sys.enable_sigterm_injection") != true {
			t.Error("sys.enable_sigterm_injection is not true: every stop waits for SIGKILL")
		}
	})
	t.Run("reproducible build", func(t *testing.T) {
		_, _, text := dockerArgs(t)
		for _, f := range image.BuildFlags {
			if !strings.Contains(text, strings.ReplaceAll(f, "-ldflags=-s -w -buildid=", `-ldflags="-s -w -buildid="`)) {
				t.Errorf("the Dockerfile's go build lacks %s", f)
			}
		}
		ign, err := os.ReadFile("../../.dockerignore")
		if err != nil {
			t.Fatal(".dockerignore is missing: COPY . . takes .git (VCS stamp, MRENCLAVE changes) and key files")
		}
		lines := strings.Split(string(ign), "\n")
		for _, want := range []string{".git", "**/*.pem", "**/*.key", "**/enclave-key*"} {
			if !contains(lines, want) {
				t.Errorf(".dockerignore lacks %s", want)
			}
		}
	})
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.TrimSpace(x) == s {
			return true
		}
	}
	return false
}

// TestEveryVariant: properties every variant's objects keep.
func TestEveryVariant(t *testing.T) {
	for name, o := range manifests.Variants {
		t.Run(name, func(t *testing.T) {
			b, err := manifests.Render(o)
			if err != nil {
				t.Fatal(err)
			}
			objs := objects(t, b)
			np := objs["NetworkPolicy/ppml"]
			egress, _ := get(np, "spec.egress").([]any)
			if len(egress) == 0 {
				t.Fatal("no egress rules")
			}
			for _, r := range egress {
				rm := r.(map[string]any)
				to, _ := rm["to"].([]any)
				if len(to) == 0 || len(rm["ports"].([]any)) == 0 {
					t.Errorf("egress rule %v: any destination (or any port); limit it to the database, the PCCS and DNS", rm)
				}
				for _, p := range to {
					if cidr := get(p.(map[string]any), "ipBlock.cidr"); cidr == "0.0.0.0/0" || cidr == "::/0" {
						t.Errorf("egress to %v", cidr)
					}
				}
			}
			if h := objs["Service/"+manifests.HeadlessService]; get(h, "spec.clusterIP") != "None" {
				t.Error("no headless Service: Prometheus cannot find each pod")
			}
			var pod map[string]any
			if d, ok := objs["Deployment/ppml"]; ok {
				pod = get(d, "spec.template").(map[string]any)
			} else {
				ss := objs["StatefulSet/ppml"]
				pod = get(ss, "spec.template").(map[string]any)
				svc, ok := objs["Service/"+fmt.Sprint(get(ss, "spec.serviceName"))]
				if !ok || get(svc, "spec.clusterIP") != "None" {
					t.Errorf("the StatefulSet's serviceName %v is not a headless Service", get(ss, "spec.serviceName"))
				}
			}
			if container(pod)["startupProbe"] == nil {
				t.Error("no startupProbe")
			}
		})
	}
}

// TestMonitoringConfig: the plain Prometheus configuration scrapes every
// pod, and the alerts cover a target that is down or gone.
func TestMonitoringConfig(t *testing.T) {
	b, err := os.ReadFile("../../deploy/monitoring/prometheus-scrape.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string           `json:"job_name"`
			StaticConfigs []map[string]any `json:"static_configs"`
			DNSSD         []struct {
				Names []string `json:"names"`
				Type  string   `json:"type"`
			} `json:"dns_sd_configs"`
			TLS struct {
				ServerName string `json:"server_name"`
			} `json:"tls_config"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.ScrapeConfigs) != 1 {
		t.Fatalf("%d scrape configs", len(cfg.ScrapeConfigs))
	}
	sc := cfg.ScrapeConfigs[0]
	if len(sc.StaticConfigs) > 0 || len(sc.DNSSD) != 1 || sc.DNSSD[0].Type != "A" || len(sc.DNSSD[0].Names) != 1 ||
		!strings.HasPrefix(sc.DNSSD[0].Names[0], manifests.HeadlessService+".") {
		t.Error("the ppml job does not discover each pod (dns_sd_configs, type A, on the headless Service): a Service address reaches one pod per scrape")
	}
	if sc.TLS.ServerName != manifests.Name {
		t.Errorf("tls_config.server_name %q: pods are scraped by IP, the certificate names %s", sc.TLS.ServerName, manifests.Name)
	}
	rules, err := os.ReadFile("../../deploy/monitoring/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`up{job="ppml"} == 0`, `absent(up{job="ppml"})`} {
		if !strings.Contains(string(rules), want) {
			t.Errorf("alerts.yaml has no rule on %s", want)
		}
	}
}
