package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml-project/ppml/quote/quotetest"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
)

// dcapVectors is the repository's DCAP vector set (quote/testdata/dcap).
var dcapVectors = quotetest.Dir()

type dcapVector struct {
	quote []byte
	at    time.Time
	exp   map[string]any
}

func loadDCAP(t *testing.T, name, colDir string) dcapVector {
	t.Helper()
	dir := filepath.Join(dcapVectors, name)
	q, err := os.ReadFile(filepath.Join(dir, "quote.bin"))
	if err != nil {
		t.Fatal(err)
	}
	col, err := os.ReadFile(filepath.Join(dir, "collateral.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(colDir, name+".json"), col, 0o600); err != nil {
		t.Fatal(err)
	}
	var v dcapVector
	v.quote = q
	eb, _ := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err := json.Unmarshal(eb, &v.exp); err != nil {
		t.Fatal(err)
	}
	if v.at, err = time.Parse(time.RFC3339, v.exp["at"].(string)); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestAttestIntelVectors runs the real Intel quotes of testdata/dcap through
// the service with --collateral-dir and the clock at each vector's time.
func TestAttestIntelVectors(t *testing.T) {
	colDir := t.TempDir()
	vecs := map[string]dcapVector{}
	for _, name := range []string{"sgx-phala", "tdx-v4-oasis", "tdx-v4-oasis-out-of-date"} {
		vecs[name] = loadDCAP(t, name, colDir)
	}
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			clock := &servertest.Clock{}
			inst := servertest.Start(t, servertest.Options{Store: st, Clock: clock, Modify: func(c *server.Config) { c.CollateralDir = colDir }})
			_, cfg := inst.Enroll(t)
			h, _ := client.HTTPClient(inst.CAFile, 0)
			e := &asEnv{t: t, inst: inst, cfg: cfg, http: h}
			e.att, _ = client.NewAttestation(cfg)
			r := newRaw(t, inst, cfg)
			ehsmVerify := func(q []byte, policyID string) envelopeResp {
				p := `{"quote":"` + base64.StdEncoding.EncodeToString(q) + `","nonce":"test"`
				if policyID != "" {
					p += `,"policyId":"` + policyID + `"`
				}
				return r.post("VerifyQuote", r.signed(p+"}", clock.Now(), nonce()))
			}
			bigdl := func(q []byte, policyID string) (int, map[string]any) {
				f := map[string]any{"quote": base64.StdEncoding.EncodeToString(q)}
				if policyID != "" {
					f["policyID"] = policyID
				}
				return e.bigdl("/verifyQuote", e.cred(f))
			}

			// SGX, ConfigurationAndSWHardeningNeeded with CRLs: BigDL 1, eHSM 0xA008.
			v := vecs["sgx-phala"]
			clock.Set(v.at)
			if code, out := bigdl(v.quote, ""); code != 200 || out["result"] != 1.0 || out["simulated"] != nil {
				t.Fatalf("sgx-phala BigDL: %d %v", code, out)
			}
			if res := ehsmVerify(v.quote, ""); res.Code != 200 || res.Result["result"] != float64(0xA008) {
				t.Fatalf("sgx-phala eHSM: %+v", res)
			}
			ver := inst.Server.Attestation().VerifyQuote(context.Background(), v.quote)
			if ver.Reason != "" || !ver.Result.Verified || ver.Result.Simulated || ver.TCBStatus() != v.exp["tcb_status"] || ver.Result.MREnclave != v.exp["mr_enclave"] {
				t.Fatalf("sgx-phala verdict: %+v", ver)
			}
			// The collateral's expiry is exported for the expiry alert.
			mresp, err := h.Get(inst.URL + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			if m := readAll(t, mresp); !strings.Contains(m, `ppml_attestation_collateral_expiry_timestamp_seconds{fmspc="`+v.exp["fmspc"].(string)+`",tee="sgx"}`) {
				t.Fatal("collateral expiry not exported after a verification")
			}
			// Native: its report data is a constant, so it cannot carry our nonce.
			n, _ := e.att.Nonce(context.Background())
			_, err = e.att.Verify(context.Background(), client.VerifyRequest{Quote: v.quote, Nonce: n.Nonce})
			wantRefusal(t, err, 403, "report_data_mismatch", "SHA-256(nonce || runtime_data)")

			// The verifier uses the service clock: today the collateral has expired.
			clock.Set(v.at.AddDate(3, 0, 0))
			if code, out := bigdl(v.quote, ""); code != 400 || out["result"] != -1.0 || !strings.Contains(out["message"].(string), "collateral_expired") {
				t.Fatalf("sgx-phala later: %d %v", code, out)
			}

			// TDX UpToDate, collateral without CRLs: refused unless a policy allows it.
			v = vecs["tdx-v4-oasis"]
			clock.Set(v.at)
			if code, out := bigdl(v.quote, ""); code != 400 || out["result"] != -1.0 || !strings.Contains(out["message"].(string), "CRLs were not checked") {
				t.Fatalf("tdx-v4-oasis without CRLs: %d %v", code, out)
			}
			pol, err := e.att.CreatePolicy(context.Background(), json.RawMessage(`{"tee":"tdx","mr_td":["`+v.exp["mr_td"].(string)+`"],"require_crl":false}`))
			if err != nil {
				t.Fatal(err)
			}
			if code, out := bigdl(v.quote, pol.ID); code != 200 || out["result"] != 0.0 {
				t.Fatalf("tdx-v4-oasis with require_crl false: %d %v", code, out)
			}
			if res := ehsmVerify(v.quote, pol.ID); res.Code != 200 || res.Result["result"] != 0.0 {
				t.Fatalf("tdx-v4-oasis eHSM: %+v", res)
			}

			// TDX platform matching no TCB level.
			v = vecs["tdx-v4-oasis-out-of-date"]
			clock.Set(v.at)
			if code, out := bigdl(v.quote, ""); code != 400 || out["result"] != -1.0 || !strings.Contains(out["message"].(string), "tcb_not_supported") {
				t.Fatalf("out-of-date BigDL: %d %v", code, out)
			}
			if res := ehsmVerify(v.quote, ""); res.Code != 200 || res.Result["result"] != float64(0xA006) || !strings.Contains(res.Message, "tcb_not_supported") {
				t.Fatalf("out-of-date eHSM: %+v", res)
			}
		})
	}
}

func TestAttestNoCollateral(t *testing.T) {
	colDir := t.TempDir()
	v := loadDCAP(t, "sgx-phala", t.TempDir())
	inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) { c.CollateralDir = colDir }})
	_, cfg := inst.Enroll(t)
	h, _ := client.HTTPClient(inst.CAFile, 0)
	e := &asEnv{t: t, inst: inst, cfg: cfg, http: h}
	code, out := e.bigdl("/verifyQuote", e.cred(map[string]any{"quote": base64.StdEncoding.EncodeToString(v.quote)}))
	if code != 400 || out["reason"] != "no_collateral" || !strings.Contains(out["message"].(string), "00a067110000") {
		t.Fatalf("no collateral: %d %v", code, out)
	}
}
