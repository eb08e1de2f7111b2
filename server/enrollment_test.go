package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/k8s/doctor"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
)

// TestEnrollmentNamesTheTwoWays: eHSM Enroll, BigDL KMS POST /user and
// BigDL AS GET /enroll, sent as the upstream clients send them (no admin
// credential), are refused with a message naming both ways to enroll;
// ppml doctor says the same, and --open-enrollment lets them through.
func TestEnrollmentNamesTheTwoWays(t *testing.T) {
	for _, open := range []bool{false, true} {
		inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) { c.OpenEnrollment = open }})
		h, _ := client.HTTPClient(inst.CAFile, 0)
		do := func(method, path, ctype string, body []byte) (int, string) {
			t.Helper()
			req, _ := http.NewRequest(method, inst.URL+path, bytes.NewReader(body))
			if ctype != "" {
				req.Header.Set("Content-Type", ctype)
			}
			resp, err := h.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		// eHSM Python SDK (Session.enroll): GET <base_url>/?Action=Enroll, base_url .../ehsm.
		_, ehsmBody := do("GET", "/ehsm/?Action=Enroll", "", nil)
		// BigDL's BigDLKeyManagementService / README: POST /user/<name>?token=<t>.
		userCode, userBody := do("POST", "//user/alice?token=alice-token", "", nil)
		// BigDL AS README: curl -k https://as:9875/enroll.
		asCode, asBody := do("GET", "/enroll", "", nil)
		for name, b := range map[string]string{"eHSM Enroll": ehsmBody, "BigDL POST /user": userBody, "BigDL AS GET /enroll": asBody} {
			if open {
				continue
			}
			for _, want := range []string{"ppml enroll", "--bigdl-user", "--open-enrollment", "trusted network"} {
				if !strings.Contains(b, want) {
					t.Errorf("%s refusal does not name %q: %s", name, want, b)
				}
			}
		}
		var env struct {
			Code int `json:"code"`
		}
		json.Unmarshal([]byte(ehsmBody), &env)
		if open != (env.Code == 200) || open != (userCode == 200) || open != (asCode == 200) {
			t.Errorf("open=%v: eHSM code %d, POST /user %d, GET /enroll %d", open, env.Code, userCode, asCode)
		}
		if !open && (userCode != 401 || asCode != 401) {
			t.Errorf("refusals: POST /user %d, GET /enroll %d, want 401", userCode, asCode)
		}

		checks := doctor.ServiceChecks(context.Background(), doctor.Options{KMSURL: inst.URL, CAFile: inst.CAFile})
		var detail string
		for _, c := range checks {
			if c.Name == "Enrollment" {
				detail = c.Detail
			}
		}
		wants := []string{"ppml enroll --kms " + inst.URL, "--bigdl-user NAME", "--open-enrollment"}
		if open {
			wants = []string{"open (--open-enrollment)", "trusted network"}
		}
		for _, w := range wants {
			if !strings.Contains(detail, w) {
				t.Errorf("open=%v: doctor's enrollment check %q lacks %q", open, detail, w)
			}
		}
	}
}
