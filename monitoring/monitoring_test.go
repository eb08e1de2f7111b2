// Package monitoring tests the monitoring files shipped under
// deploy/monitoring against the real tools: promtool checks and unit-tests
// the alert rules, the dashboard and rules are checked to use only metrics
// a running server exposes, and a real Prometheus scrapes a running server
// under load.
//
// Prometheus and promtool come from $PROMETHEUS and $PROMTOOL or the PATH
// (scripts/test.sh installs Debian's prometheus package). Without them the
// tests fail.
package monitoring

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/quote/quotetest"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
)

const dir = "../deploy/monitoring"

func tool(t *testing.T, name, env string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(name + " not found (set " + env + " or install Debian's prometheus package: scripts/test.sh does)")
	}
	return p
}

func run(t *testing.T, wd, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = wd
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPromtoolRules(t *testing.T) {
	promtool := tool(t, "promtool", "PROMTOOL")
	out := run(t, dir, promtool, "check", "rules", "alerts.yaml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatal(out)
	}
	out = run(t, dir, promtool, "test", "rules", "alerts_test.yaml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatal(out)
	}
	// The plain scrape configuration is valid (its CA file made to exist).
	tmp := t.TempDir()
	cfg := readFile(t, "prometheus-scrape.yaml")
	cfg = strings.ReplaceAll(cfg, "/etc/prometheus/ppml-ca.crt", filepath.Join(tmp, "ca.crt"))
	cfg = strings.ReplaceAll(cfg, "/etc/prometheus/ppml-metrics.token", filepath.Join(tmp, "metrics.token"))
	write(t, filepath.Join(tmp, "metrics.token"), "")
	cfg = strings.ReplaceAll(cfg, "- alerts.yaml", "- "+abs(t, filepath.Join(dir, "alerts.yaml")))
	write(t, filepath.Join(tmp, "ca.crt"), "")
	write(t, filepath.Join(tmp, "prometheus.yml"), cfg)
	run(t, tmp, promtool, "check", "config", "prometheus.yml")
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert string `json:"alert"`
			Expr  string `json:"expr"`
		} `json:"rules"`
	} `json:"groups"`
}

// podDiscovery is the in-cluster discovery of prometheus-scrape.yaml.
const podDiscovery = `# One A record per pod: the headless Service (ppml k8s manifests).
    dns_sd_configs:
      - names: [ppml-headless.ppml.svc.cluster.local]
        type: A
        port: 9000
`

func alerts(t *testing.T) ruleFile {
	var rf ruleFile
	if err := yaml.Unmarshal([]byte(readFile(t, "alerts.yaml")), &rf); err != nil {
		t.Fatal(err)
	}
	return rf
}

// Every alert has a unit test; the PrometheusRule carries the same groups.
func TestEveryAlertTestedAndPrometheusRuleInStep(t *testing.T) {
	rf := alerts(t)
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				AlertName string           `json:"alertname"`
				ExpAlerts []map[string]any `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, "alerts_test.yaml")), &tests); err != nil {
		t.Fatal(err)
	}
	fires := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.AlertName] = true
			}
		}
	}
	n := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert != "" && !fires[r.Alert] {
				t.Errorf("alert %s has no unit test in alerts_test.yaml where it fires", r.Alert)
			}
		}
	}
	if n < 6 {
		t.Fatalf("%d rules", n)
	}
	var plain, crd map[string]any
	if err := yaml.Unmarshal([]byte(readFile(t, "alerts.yaml")), &plain); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(readFile(t, "prometheusrule.yaml")), &crd); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(plain["groups"])
	b, _ := json.Marshal(crd["spec"].(map[string]any)["groups"])
	if !bytes.Equal(a, b) {
		t.Error("prometheusrule.yaml spec.groups differs from alerts.yaml groups")
	}
	if crd["kind"] != "PrometheusRule" {
		t.Error("prometheusrule.yaml kind")
	}
	var sm map[string]any
	// One ServiceMonitor for both uses: the kustomize component, also
	// applicable on its own (kubectl apply -f).
	if err := yaml.Unmarshal([]byte(readFileAt(t, filepath.Join(dir, "..", "components", "monitoring", "servicemonitor.yaml"))), &sm); err != nil || sm["kind"] != "ServiceMonitor" {
		t.Errorf("components/monitoring/servicemonitor.yaml: %v", err)
	}
}

// load drives every kind of request the metrics describe and returns when
// ctx ends (or after one round when once is set).
func load(t *testing.T, inst *servertest.Instance, ctx context.Context, once bool) {
	t.Helper()
	e, cfg := inst.Enroll(t)
	as, err := client.NewAttestation(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for {
		kid, err := e.CreateKey(ctx, "EH_AES_GCM_256")
		if err != nil && ctx.Err() == nil {
			t.Errorf("CreateKey: %v", err)
			return
		}
		if err == nil {
			if _, err := e.GenerateDataKeyWithoutPlaintext(ctx, kid, 32, ""); err != nil && ctx.Err() == nil {
				t.Errorf("GenerateDataKeyWithoutPlaintext: %v", err)
			}
		}
		// A refused request and a refused attestation (not a quote).
		e.GenerateDataKeyWithoutPlaintext(ctx, "no-such-key", 32, "")
		if n, err := as.Nonce(ctx); err == nil {
			if _, err := as.Verify(ctx, client.VerifyRequest{Quote: []byte("not a quote"), Nonce: n.Nonce}); err == nil {
				t.Error("garbage quote accepted")
			}
		} else if ctx.Err() == nil {
			t.Errorf("nonce: %v", err)
		}
		if once || ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sgxPhalaExpiry is when the sgx-phala collateral lapses (its QE identity's
// nextUpdate, quote/testdata/dcap/README.md), the value the collateral
// expiry metric must carry after that quote was verified.
var sgxPhalaExpiry = time.Date(2025, 7, 19, 10, 1, 18, 0, time.UTC)

// startWithIntelCollateral starts a server holding the sgx-phala collateral
// (--collateral-dir) with its clock at the vector's time, and verifies the
// real quote through the native API, so that the attestation service
// itself exports the collateral's expiry (the verification is refused after
// it, for report data that cannot carry our nonce).
func startWithIntelCollateral(t *testing.T) *servertest.Instance {
	t.Helper()
	v := quotetest.Load(t, "sgx-phala")
	colDir := t.TempDir()
	write(t, filepath.Join(colDir, "sgx-phala.json"), string(v.Collateral))
	clock := &servertest.Clock{}
	// /metrics behind a bearer token, as the manifests deploy it.
	write(t, filepath.Join(colDir, "metrics.token"), metricsToken+"\n")
	inst := servertest.Start(t, servertest.Options{Clock: clock, Modify: func(c *server.Config) {
		c.CollateralDir = colDir
		c.MetricsTokenFile = filepath.Join(colDir, "metrics.token")
	}})
	clock.Set(v.At)
	_, cfg := inst.Enroll(t)
	as, err := client.NewAttestation(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n, err := as.Nonce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = as.Verify(context.Background(), client.VerifyRequest{Quote: v.Quote, Nonce: n.Nonce})
	if err == nil || !strings.Contains(err.Error(), "report_data") {
		t.Fatalf("sgx-phala through the native API: %v, want the report data refusal after a verified quote", err)
	}
	clock.Set(time.Now()) // back to real time for the eHSM load (timestamps are checked)
	return inst
}

// metricsToken is the bearer token /metrics requires in these tests.
const metricsToken = "monitoring-test-metrics-token"

func scrape(t *testing.T, inst *servertest.Instance) map[string]bool {
	t.Helper()
	req, _ := http.NewRequest("GET", inst.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+metricsToken)
	resp, err := httpClient(t, inst.CAFile).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics with the token: %s", resp.Status)
	}
	body, _ := io.ReadAll(resp.Body)
	names := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		names[name] = true
	}
	return names
}

var metricRE = regexp.MustCompile(`\b(ppml|process|go)_[a-z0-9_]+\b`)

// TestDashboardAndRulesUseExistingMetrics: every metric name in the
// dashboard's and the alerts' PromQL is exposed by a server after load.
func TestDashboardAndRulesUseExistingMetrics(t *testing.T) {
	inst := startWithIntelCollateral(t)
	load(t, inst, context.Background(), true)
	have := scrape(t, inst)

	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal([]byte(readFile(t, "grafana-dashboard.json")), &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	exprs := map[string]string{}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs["dashboard panel "+p.Title] += tg.Expr + "\n"
		}
	}
	for _, v := range dash.Templating.List {
		exprs["dashboard variable"] += v.Definition + "\n"
	}
	for _, g := range alerts(t).Groups {
		for _, r := range g.Rules {
			exprs["alert "+r.Alert] += r.Expr
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("only %d expressions", len(exprs))
	}
	used := map[string]bool{}
	for where, e := range exprs {
		for _, name := range metricRE.FindAllString(e, -1) {
			used[name] = true
			if !have[name] {
				t.Errorf("%s uses %s, which the server does not expose", where, name)
			}
		}
	}
	// And the other way: every ppml metric is on the dashboard.
	for name := range have {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if strings.HasPrefix(name, "ppml_") && !used[name] && !used[base+"_bucket"] && !used[base+"_count"] && !used[base] {
			t.Errorf("%s is not on the dashboard nor in an alert", name)
		}
	}
	// docs/metrics.md documents every ppml metric.
	doc := readFileAt(t, "../docs/metrics.md")
	for name := range have {
		if strings.HasPrefix(name, "ppml_") {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
			if !strings.Contains(doc, "`"+base+"`") {
				t.Errorf("docs/metrics.md does not list %s", base)
			}
		}
	}
}

// TestPrometheusScrapesServer runs the real Prometheus against a running
// server under load and asserts, through its HTTP API, that the series exist
// and move, and that the alert rules load.
func TestPrometheusScrapesServer(t *testing.T) {
	prom := tool(t, "prometheus", "PROMETHEUS")
	inst := startWithIntelCollateral(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); load(t, inst, ctx, false) }()
	defer func() { cancel(); wg.Wait() }()

	tmp := t.TempDir()
	tokenFile := filepath.Join(tmp, "metrics.token")
	write(t, tokenFile, metricsToken)
	target := strings.TrimPrefix(inst.URL, "https://")
	cfg := readFile(t, "prometheus-scrape.yaml")
	for old, new := range map[string]string{
		"scrape_interval: 30s":               "scrape_interval: 1s",
		"evaluation_interval: 30s":           "evaluation_interval: 1s",
		"/etc/prometheus/ppml-ca.crt":        inst.CAFile,
		"/etc/prometheus/ppml-metrics.token": tokenFile,
		// Pod discovery needs a cluster: a static target instead.
		podDiscovery:        "static_configs:\n      - targets: ['" + target + "']\n        labels: {instance: ppml-0}\n",
		"server_name: ppml": "server_name: localhost",
		"- alerts.yaml":     "- " + abs(t, filepath.Join(dir, "alerts.yaml")),
	} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("prometheus-scrape.yaml no longer contains %q", old)
		}
		cfg = strings.ReplaceAll(cfg, old, new)
	}
	write(t, filepath.Join(tmp, "prometheus.yml"), cfg)
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	logf, err := os.Create(filepath.Join(tmp, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prom, "--config.file="+filepath.Join(tmp, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(tmp, "data"), "--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(tmp, "prometheus.log"))
			t.Logf("prometheus log:\n%s", tail(b, 6000))
		}
	}()
	api := "http://" + addr

	// The series exist...
	first := map[string]float64{}
	queries := map[string]string{
		"up":                        `up{job="ppml"}`,
		"requests":                  `sum(ppml_requests_total{job="ppml"})`,
		"key operations":            `sum(ppml_requests_total{job="ppml",api="ehsm",action="CreateKey",result="ok"})`,
		"refused requests":          `sum(ppml_requests_total{job="ppml",result!="ok"})`,
		"latency observations":      `sum(ppml_request_duration_seconds_count{job="ppml"})`,
		"attestation refusals":      `sum(ppml_attestation_results_total{job="ppml",result!="accepted"})`,
		"store operations":          `sum(ppml_store_operation_duration_seconds_count{job="ppml"})`,
		"enabled keys":              `sum(ppml_kms_keys{job="ppml",state="Enabled"})`,
		"sealed":                    `ppml_kms_sealed{job="ppml"}`,
		"tls expiry (seconds left)": `min(ppml_tls_certificate_expiry_timestamp_seconds{job="ppml"}) - time()`,
		"collateral expiry":         `ppml_attestation_collateral_expiry_timestamp_seconds{job="ppml",tee="sgx",fmspc="00a067110000"}`,
	}
	deadline := time.Now().Add(60 * time.Second)
	for name, q := range queries {
		for {
			v, ok := query(t, api, q)
			if ok {
				first[name] = v
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no series for %s after 60s", name, q)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	if first["up"] != 1 || first["sealed"] != 0 || first["tls expiry (seconds left)"] < 86400 || first["collateral expiry"] != float64(sgxPhalaExpiry.Unix()) {
		t.Errorf("values: %v", first)
	}
	// ...and the counters move.
	moving := []string{"requests", "key operations", "refused requests", "latency observations", "attestation refusals", "store operations", "enabled keys"}
	for _, name := range moving {
		for {
			v, _ := query(t, api, queries[name])
			if v > first[name] {
				break
			}
			if time.Now().After(deadline.Add(30 * time.Second)) {
				t.Fatalf("%s does not increase: %v then %v", name, first[name], v)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	// The rules loaded and evaluate without errors.
	var rules struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name, Health, LastError string
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	getJSON(t, api+"/api/v1/rules", &rules)
	var names []string
	for _, g := range rules.Data.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Name)
			if r.Health == "err" {
				t.Errorf("rule %s: %s", r.Name, r.LastError)
			}
		}
	}
	sort.Strings(names)
	if !slices.Contains(names, "PPMLKMSSealed") || !slices.Contains(names, "PPMLTargetDown") || len(names) != 9 {
		t.Errorf("rules loaded: %v", names)
	}
}

func query(t *testing.T, api, q string) (float64, bool) {
	t.Helper()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
		Error string `json:"error"`
	}
	if !getJSON(t, api+"/api/v1/query?query="+url.QueryEscape(q), &r) {
		return 0, false
	}
	if r.Status != "success" {
		t.Fatalf("query %s: %s", q, r.Error)
	}
	if len(r.Data.Result) == 0 {
		return 0, false
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("query %s: value %q", q, s)
	}
	return v, true
}

func getJSON(t *testing.T, u string, out any) bool {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		return false // not up yet
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusServiceUnavailable {
		return false
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: %v\n%s", u, err, b)
	}
	return true
}

func httpClient(t *testing.T, caFile string) *http.Client {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(readFileAt(t, caFile))) {
		t.Fatal("no CA certificate in " + caFile)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func readFile(t *testing.T, name string) string { return readFileAt(t, filepath.Join(dir, name)) }

func readFileAt(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func abs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return fmt.Sprintf("%s", b)
}
