package server_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server/servertest"
)

// Refused authentications are audited: a wrong API key, an unknown app, a
// bad eHSM signature, a replay, a wrong admin token, a wrong BigDL token.
func TestAuthFailuresAudited(t *testing.T) {
	ctx := context.Background()
	inst := servertest.Start(t, servertest.Options{})
	_, cfg := inst.Enroll(t)
	h, _ := client.HTTPClient(inst.CAFile, 0)

	wrong := cfg
	wrong.APIKey = "WrongWrongWrongWrongWrongWrong12"
	nw, _ := client.NewNative(wrong)
	if _, err := nw.ListKeys(ctx); err == nil {
		t.Fatal("wrong API key accepted")
	}
	r := newRaw(t, inst, cfg)
	body := r.signed(`{}`, time.Now(), "replayed")
	ok(t, r.post("ListKey", body))
	r.post("ListKey", body) // replay
	bad := strings.Replace(string(body), `"sign":"`, `"sign":"A`, 1)
	r.post("ListKey", []byte(bad))
	req, _ := http.NewRequest("POST", inst.URL+"/v1/apps", nil)
	req.Header.Set("Authorization", "Bearer not-the-admin-token")
	if resp, err := h.Do(req); err == nil {
		resp.Body.Close()
	}
	req, _ = http.NewRequest("POST", inst.URL+"/primaryKey/pk?user=nobody&token=wrongtoken", nil)
	if resp, err := h.Do(req); err == nil {
		resp.Body.Close()
	}
	inst.Stop()
	log, err := os.ReadFile(filepath.Join(inst.DataDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"result":"bad_api_key"`, `"result":"replay"`, `"result":"bad_signature"`, `"result":"admin_invalid"`, `"principal":"bigdl:nobody","action":"Authenticate","result":"bad_credentials"`} {
		if !strings.Contains(string(log), want) {
			t.Errorf("audit log lacks %s:\n%s", want, log)
		}
	}
	if strings.Contains(string(log), "WrongWrong") || strings.Contains(string(log), "not-the-admin-token") || strings.Contains(string(log), "wrongtoken") {
		t.Error("the audit log holds a presented credential")
	}
}
