package server_test

import (
	"encoding/base64"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/sim"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
)

// TestBigDLISVProdIDUpstreamRendering: a SGXMRSignerPolicy copied from an
// upstream BigDL AS matches the same enclaves on ppml. Upstream keeps
// isvProdID as text and compares it with AttestationUtil.getISVProdIDFromQuote,
// the hex of quote bytes 304..306 read big-endian; the request bodies
// below are the ones BigDL's registerPolicy/verifyQuote clients send.
func TestBigDLISVProdIDUpstreamRendering(t *testing.T) {
	// A real Intel quote (ISVPRODID bytes 00 00), verified with its collateral.
	colDir := t.TempDir()
	v := loadDCAP(t, "sgx-phala", colDir)
	if got := hex.EncodeToString(v.quote[304:306]); got != "0000" || v.exp["isv_prod_id"] != 0.0 {
		t.Fatalf("sgx-phala ISVPRODID bytes %s, expected.json %v", got, v.exp["isv_prod_id"])
	}
	clock := &servertest.Clock{}
	clock.Set(v.at)
	inst := servertest.Start(t, servertest.Options{Clock: clock, Modify: func(c *server.Config) {
		c.CollateralDir = colDir
		c.AllowSimulation = true
	}})
	_, cfg := inst.Enroll(t)
	h, _ := client.HTTPClient(inst.CAFile, 0)
	e := &asEnv{t: t, inst: inst, cfg: cfg, http: h}
	e.sim = loadSim(t, inst)

	register := func(mrSigner string, isvProdID any) (string, map[string]any) {
		t.Helper()
		code, out := e.bigdl("/registerPolicy", e.cred(map[string]any{"policyType": "SGXMRSignerPolicy", "mrSigner": mrSigner, "isvProdID": isvProdID}))
		if code != 200 {
			t.Fatalf("registerPolicy isvProdID %v: %d %v", isvProdID, code, out)
		}
		return out["policyID"].(string), out
	}
	verify := func(q []byte, pid string) (int, map[string]any) {
		return e.bigdl("/verifyQuote", e.cred(map[string]any{"quote": base64.StdEncoding.EncodeToString(q), "policyID": pid}))
	}

	// Real quote: upstream renders product 0 as "0".
	phalaSigner := v.exp["mr_signer"].(string)
	pid, out := register(phalaSigner, "0")
	if info := out["isvProdID"].(map[string]any); info["productID"] != 0.0 || !strings.Contains(info["readAs"].(string), `"100" is product ID 1`) {
		t.Fatalf("registerPolicy answer does not say how isvProdID was read: %v", out)
	}
	if code, out := verify(v.quote, pid); code != 200 || out["result"] != 1.0 {
		t.Fatalf("sgx-phala under isvProdID \"0\": %d %v", code, out)
	}
	pid, _ = register(phalaSigner, "100") // product 1: not this quote
	if code, out := verify(v.quote, pid); code != 400 || out["result"] != -1.0 || !strings.Contains(out["message"].(string), "isv_prod_id 0, policy requires 1") {
		t.Fatalf("sgx-phala under isvProdID \"100\": %d %v", code, out)
	}

	// Simulated quotes (signed now) whose bytes 304..306 are 01 00 (product 1) and 00 01 (256).
	clock.Set(time.Now())
	signer := hex.EncodeToString(fill(0x22, 32))
	var rd [64]byte
	m1 := measurements(false, rd)
	m256 := m1
	m256.ISVProdID = 256
	q1, q256 := e.quote(abi.SGX, m1), e.quote(abi.SGX, m256)
	if hex.EncodeToString(q1[304:306]) != "0100" || hex.EncodeToString(q256[304:306]) != "0001" {
		t.Fatalf("simulated ISVPRODID bytes %x %x", q1[304:306], q256[304:306])
	}
	for _, c := range []struct {
		isvProdID any
		product   float64
		matches   []byte
		refuses   []byte
	}{
		{"100", 1, q1, q256},  // upstream's rendering of product 1
		{100, 1, q1, q256},    // a JSON number: Jackson reads its digits as the text
		{"0100", 1, q1, q256}, // leading zero
		{"1", 256, q256, q1},  // bytes 00 01
		{"ABCD", 0xcdab, nil, q1},
	} {
		pid, out := register(signer, c.isvProdID)
		if got := out["isvProdID"].(map[string]any)["productID"]; got != c.product {
			t.Errorf("isvProdID %v read as %v, want %v", c.isvProdID, got, c.product)
		}
		if c.matches != nil {
			if code, out := verify(c.matches, pid); code != 200 || out["result"] != 0.0 {
				t.Errorf("isvProdID %v: matching quote refused: %d %v", c.isvProdID, code, out)
			}
		}
		if code, out := verify(c.refuses, pid); code != 400 || out["result"] != -1.0 || !strings.Contains(out["message"].(string), "isv_prod_id") {
			t.Errorf("isvProdID %v: other product accepted: %d %v", c.isvProdID, code, out)
		}
	}
	for _, bad := range []any{"", "10000", "xyz", "0x100", -1, 1.5} {
		code, out := e.bigdl("/registerPolicy", e.cred(map[string]any{"policyType": "SGXMRSignerPolicy", "mrSigner": signer, "isvProdID": bad}))
		if code != 400 || out["result"] != -1.0 {
			t.Errorf("isvProdID %v accepted: %d %v", bad, code, out)
			continue
		}
		if r, _ := out["reason"].(string); bad != "" && !strings.Contains(r, "hex digits") {
			t.Errorf("isvProdID %v: reason %q does not say what is expected", bad, r)
		}
	}
}

// loadSim opens the simulation PKI the server created in <data-dir>/sim.
func loadSim(t *testing.T, inst *servertest.Instance) *sim.SimTEE {
	t.Helper()
	s, err := sim.Load(filepath.Join(inst.DataDir, "sim"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBigDLASFieldNamesAnyCase: upstream's Jackson mapper matches request
// member names case-insensitively, so clients that spell them appid/APIKEY
// work; two spellings of one member are refused.
func TestBigDLASFieldNamesAnyCase(t *testing.T) {
	e := startAS(t, "sqlite", true, nil)
	code, out := e.bigdl("/registerPolicy", map[string]any{"APPID": e.cfg.AppID, "apikey": e.cfg.APIKey, "PolicyType": "SGXMREnclavePolicy", "MRENCLAVE": strings.Repeat("11", 32)})
	if code != 200 || out["policyID"] == nil {
		t.Fatalf("registerPolicy with other spellings: %d %v", code, out)
	}
	var rd [64]byte
	q := base64.StdEncoding.EncodeToString(e.quote(abi.SGX, measurements(false, rd)))
	if code, out := e.bigdl("/verifyQuote", map[string]any{"appid": e.cfg.AppID, "ApiKey": e.cfg.APIKey, "QUOTE": q, "policyid": out["policyID"]}); code != 200 || out["result"] != 0.0 {
		t.Fatalf("verifyQuote with other spellings: %d %v", code, out)
	}
	if code, out := e.bigdl("/verifyQuote", map[string]any{"appID": e.cfg.AppID, "appid": "other", "apiKey": e.cfg.APIKey, "quote": q}); code != 400 || !strings.Contains(out["reason"].(string), "two members name appID") {
		t.Fatalf("two spellings of appID: %d %v", code, out)
	}
}
