package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/server"
)

// TestAllowDebugEnclaves: debug enclaves are refused on the BigDL AS and
// eHSM quote routes unless the operator starts the server with
// --allow-debug-enclaves; then they pass and every answer says debug: true.
// Native policies decide with their own allow_debug field, flag or not.
func TestAllowDebugEnclaves(t *testing.T) {
	for _, allow := range []bool{false, true} {
		e := startAS(t, "sqlite", true, func(c *server.Config) { c.AllowDebugEnclaves = allow })
		r := newRaw(t, e.inst, e.cfg)
		var rd [64]byte
		dbg := base64.StdEncoding.EncodeToString(e.quote(abi.SGX, measurements(true, rd)))
		prod := base64.StdEncoding.EncodeToString(e.quote(abi.SGX, measurements(false, rd)))

		// BigDL AS, as BigDLAttestationService posts it (no policy, then a policy).
		code, pol := e.bigdl("/registerPolicy", e.cred(map[string]any{"policyType": "SGXMREnclavePolicy", "mrEnclave": strings.Repeat("11", 32)}))
		if code != 200 {
			t.Fatalf("registerPolicy: %d %v", code, pol)
		}
		for _, pid := range []string{"", pol["policyID"].(string)} {
			f := map[string]any{"quote": dbg}
			if pid != "" {
				f["policyID"] = pid
			}
			code, out := e.bigdl("/verifyQuote", e.cred(f))
			if out["debug"] != true {
				t.Errorf("allow=%v policy %q: BigDL answer without debug: true: %v", allow, pid, out)
			}
			if allow && (code != 200 || out["result"] != 0.0) {
				t.Errorf("--allow-debug-enclaves: BigDL refused a debug enclave: %d %v", code, out)
			}
			if !allow && (code != 400 || out["result"] != -1.0 || !strings.Contains(out["message"].(string), "--allow-debug-enclaves")) {
				t.Errorf("default: BigDL debug enclave: %d %v", code, out)
			}
		}
		if _, out := e.bigdl("/verifyQuote", e.cred(map[string]any{"quote": prod})); out["result"] != 0.0 || out["debug"] != nil {
			t.Errorf("production enclave: %v", out)
		}

		// eHSM VerifyQuote, as eHSM's SDK and BigDL's EHSMAttestationService send it.
		res := r.call("VerifyQuote", `{"quote":"`+dbg+`","nonce":"test"}`)
		want := 0.0
		if !allow {
			want = float64(0xA006)
		}
		if res.Result["result"] != want || res.Result["debug"] != true {
			t.Errorf("allow=%v: eHSM VerifyQuote of a debug enclave: %+v", allow, res)
		}

		// Native: the policy's allow_debug decides; the operator flag does not.
		ctx := context.Background()
		for _, allowDebug := range []bool{false, true} {
			p, err := e.att.CreatePolicy(ctx, json.RawMessage(`{"tee":"sgx","allow_simulated":true,"allow_debug":`+map[bool]string{false: "false", true: "true"}[allowDebug]+`}`))
			if err != nil {
				t.Fatal(err)
			}
			res, err := e.attest(abi.SGX, true, []byte("rt"), p.ID)
			if allowDebug && (err != nil || !res.Claims.Debug) {
				t.Errorf("native allow_debug true: %v %+v", err, res)
			}
			if !allowDebug {
				wantRefusal(t, err, 403, "policy_refused", "debug enclave")
			}
		}
	}
}
