package doctor_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/k8s/doctor"
)

func TestReport(t *testing.T) {
	checks := []doctor.Check{{Name: "cluster reachable", OK: true, Detail: "v1.31"}, {Name: "sgx", OK: true, Skipped: true, Detail: "--tee none"},
		{Name: "secret ssl-keys", Problem: "missing", Fix: "ppml tls generate --apply"}}
	rep := doctor.NewReport("jobs", checks)
	var b strings.Builder
	rep.WriteText(&b)
	want := "ok    cluster reachable: v1.31\nskip  sgx: --tee none\nFAIL  secret ssl-keys: missing\n      fix: ppml tls generate --apply\n"
	if b.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", b.String(), want)
	}
	if err := rep.Err(); err == nil || err.Error() != "1 of 3 checks failed" {
		t.Errorf("Err: %v", err)
	}
	j, _ := json.Marshal(rep)
	if !strings.HasPrefix(string(j), `{"checks":[`) || !strings.HasSuffix(string(j), `"failed":1,"namespace":"jobs","ok":false}`) {
		t.Errorf("json: %s", j)
	}

	ok := doctor.NewReport("jobs", checks[:2])
	b.Reset()
	ok.WriteText(&b)
	if !strings.HasSuffix(b.String(), "all 2 checks passed\n") || ok.Err() != nil {
		t.Errorf("all passed: %q %v", b.String(), ok.Err())
	}
}
