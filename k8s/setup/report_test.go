package setup_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ppml-project/ppml/k8s/kube"
	"github.com/ppml-project/ppml/k8s/setup"
)

func TestReportText(t *testing.T) {
	rep := setup.Report{Namespace: "jobs", Items: []setup.Item{{Kind: "ServiceAccount", Name: "spark", Result: kube.Created},
		{Kind: "Secret", Name: "spark-secret", Result: kube.Unchanged, Note: "kept"}},
		TokenExpires: time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC), Kubeconfig: []byte("token: secret")}
	var b strings.Builder
	rep.WriteText(&b)
	want := "serviceaccount/spark created\nsecret/spark-secret unchanged (kept)\n" +
		"the token of the kubeconfig expires 2027-01-02T03:04:05Z: run ppml k8s setup again before then to renew it\n" +
		"namespace jobs is set up for BigDL PPML jobs\n"
	if b.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", b.String(), want)
	}
	j, _ := json.Marshal(rep.View())
	if !strings.Contains(string(j), `"changed":true`) || strings.Contains(string(j), "token: secret") {
		t.Errorf("json: %s", j)
	}
	rep.Items[0].Result, rep.TokenExpires = kube.Unchanged, time.Time{}
	b.Reset()
	rep.WriteText(&b)
	if !strings.HasSuffix(b.String(), "unchanged (kept)\nnothing to do: namespace jobs was already set up\n") {
		t.Errorf("unchanged: %q", b.String())
	}
}
