// Package metrics defines the Prometheus metrics of the KMS and AS, in one
// registry served at /metrics. docs/metrics.md lists them.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds the collectors.
type Metrics struct {
	Registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	attest   *prometheus.CounterVec
	ops      *ops
}

// State is what the metrics read at scrape time.
type State interface {
	Sealed() bool
	CountKeys(ctx context.Context) (map[string]int, error)
}

// New registers every collector; state may be nil.
func New(state State) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ppml_requests_total",
			Help: "API requests by protocol (ehsm, bigdl-kms, bigdl-as, native, operator), action and result (ok or a reason code).",
		}, []string{"api", "action", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ppml_request_duration_seconds",
			Help:    "API request latency by protocol and action.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"api", "action"}),
		attest: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ppml_attestation_results_total",
			Help: "Quote verifications by TEE (sgx, tdx, unknown), TCB status (none when verification stopped earlier) and result (accepted or the refusal reason).",
		}, []string{"tee", "tcb_status", "result"}),
	}
	m.Registry.MustRegister(m.requests, m.duration, m.attest,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.ops = newOps(m.Registry)
	if state != nil {
		m.Registry.MustRegister(&stateCollector{state: state})
	}
	return m
}

// Observe records one request.
func (m *Metrics) Observe(api, action, result string, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(api, action, result).Inc()
	m.duration.WithLabelValues(api, action).Observe(d.Seconds())
}

// InFlight exports the bounded slow operations in progress, by kind, as
// read at scrape time: a flood shows as a limit held at its maximum.
func (m *Metrics) InFlight(read func() map[string]int) {
	m.Registry.MustRegister(inFlightCollector(read))
}

var inFlightDesc = prometheus.NewDesc("ppml_limit_in_flight",
	"Bounded slow operations in progress by kind: argon2id (BigDL token checks), rsa (RSA key generations), pccs (collateral fetches).",
	[]string{"limit"}, nil)

type inFlightCollector func() map[string]int

func (c inFlightCollector) Describe(ch chan<- *prometheus.Desc) { ch <- inFlightDesc }

func (c inFlightCollector) Collect(ch chan<- prometheus.Metric) {
	for kind, n := range c() {
		ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(n), kind)
	}
}

// Attestation records one quote verification outcome.
func (m *Metrics) Attestation(tee, tcbStatus, result string) {
	if m == nil {
		return
	}
	if tee == "" {
		tee = "unknown"
	}
	if tcbStatus == "" {
		tcbStatus = "none"
	}
	m.attest.WithLabelValues(tee, tcbStatus, result).Inc()
}

var (
	sealedDesc = prometheus.NewDesc("ppml_kms_sealed", "1 while the KMS is sealed (root key not loaded), else 0.", nil, nil)
	keysDesc   = prometheus.NewDesc("ppml_kms_keys", "Primary keys by state.", []string{"state"}, nil)
)

type stateCollector struct{ state State }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- sealedDesc; ch <- keysDesc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	sealed := 0.0
	if c.state.Sealed() {
		sealed = 1
	}
	ch <- prometheus.MustNewConstMetric(sealedDesc, prometheus.GaugeValue, sealed)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.state.CountKeys(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(keysDesc, err)
		return
	}
	for _, st := range []string{"Enabled", "Disabled", "PendingDeletion", "Deleted"} {
		ch <- prometheus.MustNewConstMetric(keysDesc, prometheus.GaugeValue, float64(counts[st]), st)
	}
}
