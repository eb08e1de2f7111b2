package metrics

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ppml-project/ppml/store"
)

func TestOpsMetrics(t *testing.T) {
	m := New(nil)
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	m.SetTLSCertificateExpiry("server", "ppml", exp)
	m.SetCollateralExpiry("sgx", "00906ED50000", exp)
	m.ObserveStore("GetKey", nil, time.Millisecond)
	m.ObserveStore("GetKey", fmt.Errorf("x: %w", store.ErrNotFound), time.Millisecond)
	m.ObserveStore("GetKey", errors.New("disk"), time.Millisecond)
	m.ObserveStore("GetKey", context.Canceled, time.Millisecond)
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			labels := ""
			for _, l := range mt.GetLabel() {
				labels += l.GetName() + "=" + l.GetValue() + ","
			}
			v := mt.GetGauge().GetValue()
			if h := mt.GetHistogram(); h != nil {
				v = float64(h.GetSampleCount())
			}
			got[mf.GetName()] = append(got[mf.GetName()], fmt.Sprintf("%s%v", labels, v))
		}
	}
	e := fmt.Sprint(float64(exp.Unix()))
	check := func(name string, want ...string) {
		t.Helper()
		if fmt.Sprint(got[name]) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	check("ppml_tls_certificate_expiry_timestamp_seconds", "cert=server,subject=ppml,"+e)
	check("ppml_attestation_collateral_expiry_timestamp_seconds", "fmspc=00906ED50000,tee=sgx,"+e)
	check("ppml_store_operation_duration_seconds", "operation=GetKey,result=canceled,1", "operation=GetKey,result=error,1",
		"operation=GetKey,result=not_found,1", "operation=GetKey,result=ok,1")
	var nilM *Metrics
	nilM.ObserveStore("x", nil, 0) // nil-safe like Observe
	nilM.SetTLSCertificateExpiry("a", "b", exp)
	nilM.SetCollateralExpiry("a", "b", exp)
}
