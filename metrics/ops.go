package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ppml-project/ppml/store"
)

// ops are the operational metrics: certificate and collateral expiry, store
// latency.
type ops struct {
	tlsExpiry        *prometheus.GaugeVec
	collateralExpiry *prometheus.GaugeVec
	storeDuration    *prometheus.HistogramVec
}

func newOps(reg *prometheus.Registry) *ops {
	o := &ops{
		tlsExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ppml_tls_certificate_expiry_timestamp_seconds",
			Help: "NotAfter of the serving TLS certificate (leaf), as a Unix time, by certificate (server) and subject common name.",
		}, []string{"cert", "subject"}),
		collateralExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ppml_attestation_collateral_expiry_timestamp_seconds",
			Help: "Earliest nextUpdate of the DCAP collateral (TCB info, QE identity, CRLs) held for a TEE and FMSPC, as a Unix time.",
		}, []string{"tee", "fmspc"}),
		storeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ppml_store_operation_duration_seconds",
			Help:    "Latency of store (SQLite/PostgreSQL) operations by operation and result (ok, not_found, exists, conflict, canceled, error).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"operation", "result"}),
	}
	reg.MustRegister(o.tlsExpiry, o.collateralExpiry, o.storeDuration)
	return o
}

// SetTLSCertificateExpiry records the NotAfter of a serving certificate.
func (m *Metrics) SetTLSCertificateExpiry(cert, subject string, notAfter time.Time) {
	if m == nil {
		return
	}
	m.ops.tlsExpiry.WithLabelValues(cert, subject).Set(float64(notAfter.Unix()))
}

// SetCollateralExpiry records when the collateral held for a TEE (sgx, tdx)
// and FMSPC expires (the earliest nextUpdate among its parts).
func (m *Metrics) SetCollateralExpiry(tee, fmspc string, t time.Time) {
	if m == nil {
		return
	}
	m.ops.collateralExpiry.WithLabelValues(tee, fmspc).Set(float64(t.Unix()))
}

// ObserveStore records one store operation.
func (m *Metrics) ObserveStore(operation string, err error, d time.Duration) {
	if m == nil {
		return
	}
	m.ops.storeDuration.WithLabelValues(operation, StoreResult(err)).Observe(d.Seconds())
}

// StoreResult is the result label of a store error.
func StoreResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, store.ErrNotFound):
		return "not_found"
	case errors.Is(err, store.ErrExists):
		return "exists"
	case errors.Is(err, store.ErrConflict):
		return "conflict"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	return "error"
}
