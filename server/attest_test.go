package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/sim"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
	"github.com/ppml-project/ppml/wire/ehsmsig"
	"github.com/ppml-project/ppml/wire/token"
)

// asEnv is a running server with one enrolled app and HTTP helpers.
type asEnv struct {
	t    *testing.T
	inst *servertest.Instance
	cfg  client.Config
	http *http.Client
	att  *client.Attestation
	sim  *sim.SimTEE
}

func startAS(t *testing.T, st string, allowSim bool, modify func(*server.Config)) *asEnv {
	t.Helper()
	inst := servertest.Start(t, servertest.Options{Store: st, Modify: func(c *server.Config) {
		c.AllowSimulation = allowSim
		if modify != nil {
			modify(c)
		}
	}})
	_, cfg := inst.Enroll(t)
	h, err := client.HTTPClient(inst.CAFile, 0)
	if err != nil {
		t.Fatal(err)
	}
	att, err := client.NewAttestation(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &asEnv{t: t, inst: inst, cfg: cfg, http: h, att: att}
	if allowSim {
		// The server created its simulation PKI in <data-dir>/sim; a
		// "TEE" uses the same directory (ppml sim quote --sim-dir).
		if e.sim, err = sim.Load(filepath.Join(inst.DataDir, "sim")); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// bigdl posts a BigDL AS request and returns the status and JSON body.
func (e *asEnv) bigdl(path string, body map[string]any) (int, map[string]any) {
	e.t.Helper()
	b, _ := json.Marshal(body)
	resp, err := e.http.Post(e.inst.URL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		e.t.Fatalf("%s: body is not JSON: %s", path, data)
	}
	return resp.StatusCode, out
}

func (e *asEnv) cred(extra map[string]any) map[string]any {
	m := map[string]any{"appID": e.cfg.AppID, "apiKey": e.cfg.APIKey}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func fill(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func measurements(debug bool, rd [64]byte) sim.Measurements {
	m := sim.Measurements{ISVProdID: 1, ISVSVN: 3, Debug: debug, ReportData: rd}
	copy(m.MREnclave[:], fill(0x11, 32))
	copy(m.MRSigner[:], fill(0x22, 32))
	copy(m.MRTD[:], fill(0x33, 48))
	for i := range m.RTMR {
		copy(m.RTMR[i][:], fill(byte(0x40+i), 48))
	}
	return m
}

func (e *asEnv) quote(tee abi.TEE, m sim.Measurements) []byte {
	e.t.Helper()
	q, err := e.sim.Quote(tee, m)
	if err != nil {
		e.t.Fatal(err)
	}
	return q
}

func bind(nonce, runtime []byte) [64]byte {
	var rd [64]byte
	h := sha256.Sum256(append(append([]byte{}, nonce...), runtime...))
	copy(rd[:], h[:])
	return rd
}

// attest runs the native flow with a fresh nonce bound to runtime.
func (e *asEnv) attest(tee abi.TEE, debug bool, runtime []byte, policyID string) (client.VerifyResponse, error) {
	e.t.Helper()
	n, err := e.att.Nonce(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	q := e.quote(tee, measurements(debug, bind(n.Nonce, runtime)))
	return e.att.Verify(context.Background(), client.VerifyRequest{Quote: q, Nonce: n.Nonce, RuntimeData: runtime, PolicyID: policyID})
}

func wantRefusal(t *testing.T, err error, status int, code, msgPart string) {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != status || ae.Code != code || !strings.Contains(ae.Message, msgPart) {
		t.Fatalf("got %v (%#v), want HTTP %d %s containing %q", err, ae, status, code, msgPart)
	}
}

func TestAttestSimulatedEndToEnd(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			e := startAS(t, st, true, nil)
			ctx := context.Background()
			mrEnclave, mrSigner := hex.EncodeToString(fill(0x11, 32)), hex.EncodeToString(fill(0x22, 32))
			mrTD := hex.EncodeToString(fill(0x33, 48))
			rtmr := ""
			for i := range 4 {
				rtmr += hex.EncodeToString(fill(byte(0x40+i), 48))
			}

			// --- BigDL AS ---
			if code, out := e.bigdl("/enroll", nil); code != 405 || out["result"] != -1.0 {
				t.Fatalf("POST /enroll: %d %v", code, out)
			}
			req, _ := http.NewRequest("GET", e.inst.URL+"/enroll", nil)
			if resp, err := e.http.Do(req); err != nil || resp.StatusCode != 401 {
				t.Fatalf("enroll without admin token: %v %v", resp.StatusCode, err)
			}
			req.Header.Set("Authorization", "Bearer "+e.inst.AdminToken)
			resp, err := e.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var enr map[string]string
			json.NewDecoder(resp.Body).Decode(&enr)
			resp.Body.Close()
			if resp.StatusCode != 200 || len(enr["appID"]) != 36 || len(enr["apiKey"]) != 32 {
				t.Fatalf("GET /enroll: %d %v", resp.StatusCode, enr)
			}

			if code, out := e.bigdl("/registerPolicy", map[string]any{"appID": e.cfg.AppID, "apiKey": "wrong", "policyType": "SGXMREnclavePolicy", "mrEnclave": mrEnclave}); code != 400 || out["message"] != "Invalid app_id and api_key." || out["result"] != -1.0 {
				t.Fatalf("bad credentials: %d %v", code, out)
			}
			if code, out := e.bigdl("/registerPolicy", e.cred(map[string]any{"policyType": "NoSuchPolicy"})); code != 400 || out["message"] != "Unsupported policy type." {
				t.Fatalf("unknown policy type: %d %v", code, out)
			}
			if code, out := e.bigdl("/registerPolicy", e.cred(map[string]any{"policyType": "SGXMREnclavePolicy", "mrEnclave": "zz"})); code != 400 || !strings.Contains(out["reason"].(string), "hex") {
				t.Fatalf("bad hex: %d %v", code, out)
			}
			register := func(fields map[string]any) string {
				t.Helper()
				code, out := e.bigdl("/registerPolicy", e.cred(fields))
				id, _ := out["policyID"].(string)
				if code != 200 || len(id) != 36 {
					t.Fatalf("registerPolicy %v: %d %v", fields, code, out)
				}
				return id
			}
			sgxPolicies := []string{
				register(map[string]any{"policyType": "SGXMREnclavePolicy", "mrEnclave": strings.ToUpper(mrEnclave)}),
				// Product ID 1 in upstream's rendering (see TestBigDLISVProdIDUpstreamRendering).
				register(map[string]any{"policyType": "SGXMRSignerPolicy", "mrSigner": mrSigner, "isvProdID": 100}),
				register(map[string]any{"policyType": "SGXMRSignerPolicy", "mrSigner": mrSigner, "isvProdID": "100"}),
			}
			tdxPolicies := []string{
				register(map[string]any{"policyType": "TDXMRTDPolicy", "mrTD": mrTD}),
				register(map[string]any{"policyType": "TDXLaunchTimePolicy", "mrTD": mrTD, "rtmr": rtmr}),
			}
			var rd [64]byte
			copy(rd[:], "bigdl report data")
			rdHex := hex.EncodeToString(rd[:])
			sgxRD := register(map[string]any{"policyType": "SGXReportDataPolicy", "reportData": rdHex})
			tdxRD := register(map[string]any{"policyType": "TDXReportDataPolicy", "reportData": strings.ToUpper(rdHex)})
			sgxQ := base64.StdEncoding.EncodeToString(e.quote(abi.SGX, measurements(false, rd)))
			tdxQ := base64.StdEncoding.EncodeToString(e.quote(abi.TDX, measurements(false, rd)))
			verifyQ := func(q, pid string) (int, map[string]any) {
				fields := map[string]any{"quote": q}
				if pid != "" {
					fields["policyID"] = pid
				}
				return e.bigdl("/verifyQuote", e.cred(fields))
			}
			for _, c := range []struct {
				q   string
				ids []string
			}{{sgxQ, append(sgxPolicies, "", sgxRD)}, {tdxQ, append(tdxPolicies, "", tdxRD, "latest")}} {
				for _, id := range c.ids {
					if code, out := verifyQ(c.q, id); code != 200 || out["result"] != 0.0 || out["simulated"] != true {
						t.Fatalf("verifyQuote policy %q: %d %v", id, code, out)
					}
				}
			}
			if code, out := verifyQ(tdxQ, sgxPolicies[0]); code != 400 || out["result"] != -1.0 || !strings.Contains(out["message"].(string), "tee") {
				t.Fatalf("TDX quote under an SGX policy: %d %v", code, out)
			}
			other := register(map[string]any{"policyType": "SGXMREnclavePolicy", "mrEnclave": hex.EncodeToString(fill(0x99, 32))})
			if code, out := verifyQ(sgxQ, other); code != 400 || out["result"] != -1.0 || !strings.Contains(out["message"].(string), "mr_enclave") {
				t.Fatalf("mismatch: %d %v", code, out)
			}
			if code, out := verifyQ(sgxQ, "49ac44ff-01f0-4f59-8d7e-fcffb78f0f4c"); code != 400 || out["message"] != "Unsupported policy type." || out["result"] != -1.0 {
				t.Fatalf("unknown policy: %d %v", code, out)
			}
			if code, out := verifyQ("not base64!", ""); code != 400 || out["result"] != -1.0 {
				t.Fatalf("bad base64: %d %v", code, out)
			}
			dbg := base64.StdEncoding.EncodeToString(e.quote(abi.SGX, measurements(true, rd)))
			if code, out := verifyQ(dbg, ""); code != 400 || !strings.Contains(out["message"].(string), "debug enclave") {
				t.Fatalf("debug enclave via BigDL: %d %v", code, out)
			}

			// --- eHSM quote actions ---
			r := newRaw(t, e.inst, e.cfg)
			up := ok(t, r.call("UploadQuotePolicy", `{"mr_enclave":"`+strings.ToUpper(mrEnclave)+`","mr_signer":"`+mrSigner+`"}`))
			pid := str(t, up, "policyId")
			got := ok(t, r.call("GetQuotePolicy", `{"policyId":"`+pid+`"}`))
			if got["mr_enclave"] != mrEnclave || got["mr_signer"] != mrSigner {
				t.Fatalf("GetQuotePolicy: %v", got)
			}
			if got := ok(t, r.call("GetQuotePolicy", `{"policyId":"49ac44ff-01f0-4f59-8d7e-fcffb78f0f4c"}`)); len(got) != 1 {
				t.Fatalf("unknown policy: %v", got)
			}
			// eHSM takes exactly 64 characters; of those, only hex can match a quote.
			expectCode(t, r.call("UploadQuotePolicy", `{"mr_enclave":"abc","mr_signer":"`+mrSigner+`"}`), 400, "The mr_enclave length error: 3 characters, want exactly 64")
			expectCode(t, r.call("UploadQuotePolicy", `{"mr_enclave":"`+mrEnclave+`00","mr_signer":"`+mrSigner+`"}`), 400, "66 characters, want exactly 64")
			expectCode(t, r.call("UploadQuotePolicy", `{"mr_enclave":"`+mrEnclave+`","mr_signer":"0x`+mrSigner[2:]+`"}`), 400, "The mr_signer is not hex: 'x' at position 2")
			expectCode(t, r.call("UploadQuotePolicy", `{"mr_enclave":"`+strings.Repeat("z", 64)+`","mr_signer":"`+mrSigner+`"}`), 400, "'z' at position 1 is not 0-9 or a-f")
			for _, q := range []string{sgxQ, tdxQ} {
				payload := `{"quote":"` + q + `","nonce":"test"}`
				if q == sgxQ {
					payload = `{"quote":"` + q + `","nonce":"test","policyId":"` + pid + `"}`
				}
				res := ok(t, r.call("VerifyQuote", payload))
				if res["result"] != 0.0 || res["nonce"] != "test" {
					t.Fatalf("VerifyQuote: %v", res)
				}
				sign := res["sign"].(string)
				delete(res, "sign")
				canon := map[string]any{}
				for k, v := range res {
					if f, isNum := v.(float64); isNum {
						v = json.Number(strconv.FormatFloat(f, 'f', -1, 64))
					}
					canon[k] = v
				}
				// The answer is signed with this app's API key (the eHSM
				// VerifyQuote contract, ehsm-protocol.md §8.3), and with
				// nothing else a caller could know.
				if !ehsmsig.Verify([]byte(e.cfg.APIKey), ehsmsig.Canonical(canon), sign) {
					t.Fatalf("VerifyQuote sign does not verify: %v", res)
				}
				for _, wrong := range []string{e.cfg.AppID, "", e.inst.AdminToken} {
					if ehsmsig.Verify([]byte(wrong), ehsmsig.Canonical(canon), sign) {
						t.Fatalf("VerifyQuote sign verifies under a key other than the app's API key: %v", res)
					}
				}
			}
			up2 := ok(t, r.call("UploadQuotePolicy", `{"mr_enclave":"`+hex.EncodeToString(fill(0x99, 32))+`","mr_signer":"`+mrSigner+`"}`))
			mis := r.call("VerifyQuote", `{"quote":"`+sgxQ+`","nonce":"test","policyId":"`+str(t, up2, "policyId")+`"}`)
			if mis.Code != 200 || mis.Result["result"] != float64(0xA006) || !strings.Contains(mis.Message, "mr_enclave") {
				t.Fatalf("eHSM mismatch: %d %q %v", mis.Code, mis.Message, mis.Result)
			}
			expectCode(t, r.call("VerifyQuote", `{"quote":"`+sgxQ+`","nonce":"test","policyId":"49ac44ff-01f0-4f59-8d7e-fcffb78f0f4c"}`), 400, "Invalid  policyId.")
			expectCode(t, r.call("VerifyQuote", `{"quote":"`+sgxQ+`"}`), 400, "nonce cannot be empty")
			expectCode(t, r.call("GenerateQuote", `{"challenge":"dGVzdA=="}`), 400, "not supported")

			// --- native ---
			pol, err := e.att.CreatePolicy(ctx, json.RawMessage(`{"tee":"sgx","mr_enclave":["`+mrEnclave+`"],"isv_prod_id":1,"allow_simulated":true}`))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := e.att.GetPolicy(ctx, pol.ID); err != nil || got.ID != pol.ID || !strings.Contains(string(got.Policy), mrEnclave) {
				t.Fatalf("GetPolicy: %v %v", got, err)
			}
			jwks, err := e.att.JWKS(ctx)
			if err != nil || len(jwks.Keys) != 1 || jwks.Keys[0].KeyID == "" {
				t.Fatalf("JWKS: %v %v", jwks, err)
			}
			for _, c := range []struct {
				tee abi.TEE
				pid string
			}{{abi.SGX, pol.ID}, {abi.TDX, ""}} {
				runtime := []byte("public key of the workload " + string(c.tee))
				before := e.inst.Clock.Now().Unix()
				res, err := e.attest(c.tee, false, runtime, c.pid)
				if err != nil {
					t.Fatalf("%s native verify: %v", c.tee, err)
				}
				claims, err := token.VerifyJWKS(res.Token, jwks, e.inst.Clock.Now(), 0)
				if err != nil {
					t.Fatalf("token against JWKS: %v", err)
				}
				rt := sha256.Sum256(runtime)
				if claims.TEE != string(c.tee) || !claims.Simulated || claims.AppID != e.cfg.AppID || claims.Subject != e.cfg.AppID ||
					claims.PolicyID != c.pid || claims.RuntimeDataSHA256 != hex.EncodeToString(rt[:]) || claims.TCBStatus != "UpToDate" ||
					claims.ID == "" || claims.IssuedAt < before || claims.ExpiresAt-claims.IssuedAt > 300 || claims.ExpiresAt <= claims.IssuedAt {
					t.Fatalf("claims: %+v", claims)
				}
				if c.tee == abi.SGX && (claims.Measurements.MREnclave != mrEnclave || claims.Measurements.MRSigner != mrSigner || *claims.Measurements.ISVProdID != 1) {
					t.Fatalf("SGX measurements: %+v", claims.Measurements)
				}
				if c.tee == abi.TDX && (claims.Measurements.MRTD != mrTD || claims.Measurements.RTMR0+claims.Measurements.RTMR1+claims.Measurements.RTMR2+claims.Measurements.RTMR3 != rtmr) {
					t.Fatalf("TDX measurements: %+v", claims.Measurements)
				}
				in, err := e.inst.Server.Attestation().VerifyToken(ctx, res.Token)
				if err != nil || in.ID != claims.ID {
					t.Fatalf("in-process VerifyToken: %v %v", in, err)
				}
				if c2, err := e.att.VerifyToken(ctx, res.Token, e.inst.Clock.Now(), 0); err != nil || c2.ID != claims.ID {
					t.Fatalf("client VerifyToken: %v", err)
				}
				tampered := res.Token[:len(res.Token)-4] + "AAAA"
				if _, err := e.inst.Server.Attestation().VerifyToken(ctx, tampered); err == nil {
					t.Fatal("tampered token accepted")
				}
			}

			// Refusals, each with its reason.
			n, _ := e.att.Nonce(ctx)
			q := e.quote(abi.SGX, measurements(false, bind(n.Nonce, nil)))
			if _, err := e.att.Verify(ctx, client.VerifyRequest{Quote: q, Nonce: n.Nonce}); err != nil {
				t.Fatal(err)
			}
			_, err = e.att.Verify(ctx, client.VerifyRequest{Quote: q, Nonce: n.Nonce})
			wantRefusal(t, err, 400, "nonce_unknown_or_used", "already used")

			n, _ = e.att.Nonce(ctx)
			q = e.quote(abi.SGX, measurements(false, bind(n.Nonce, nil)))
			_, err = e.att.Verify(ctx, client.VerifyRequest{Quote: q, Nonce: n.Nonce, RuntimeData: []byte("other runtime data")})
			wantRefusal(t, err, 403, "report_data_mismatch", "SHA-256(nonce || runtime_data)")

			_, err = e.attest(abi.SGX, true, nil, "")
			wantRefusal(t, err, 403, "policy_refused", "debug enclave and the policy does not set allow_debug")
			_, err = e.attest(abi.TDX, true, nil, "")
			wantRefusal(t, err, 403, "policy_refused", "debug TD")

			_, err = e.attest(abi.SGX, false, nil, tdxPolicies[0])
			wantRefusal(t, err, 403, "policy_refused", "simulation root")

			_, cfg2 := e.inst.Enroll(t)
			att2, _ := client.NewAttestation(cfg2)
			_, err = att2.GetPolicy(ctx, pol.ID)
			wantRefusal(t, err, 404, "policy_not_found", "not found")
			n2, _ := att2.Nonce(ctx)
			q = e.quote(abi.SGX, measurements(false, bind(n2.Nonce, nil)))
			_, err = att2.Verify(ctx, client.VerifyRequest{Quote: q, Nonce: n2.Nonce, PolicyID: pol.ID})
			wantRefusal(t, err, 404, "policy_not_found", "not found")
			// Another app's nonce is unknown to this app.
			_, err = e.att.Verify(ctx, client.VerifyRequest{Quote: q, Nonce: n2.Nonce})
			wantRefusal(t, err, 400, "nonce_unknown_or_used", "another app")

			n, _ = e.att.Nonce(ctx)
			q = e.quote(abi.SGX, measurements(false, bind(n.Nonce, nil)))
			e.inst.Clock.Advance(5*time.Minute + time.Second)
			_, err = e.att.Verify(ctx, client.VerifyRequest{Quote: q, Nonce: n.Nonce})
			wantRefusal(t, err, 400, "nonce_expired", "expired")

			// Bad input is a client error.
			_, err = e.att.Verify(ctx, client.VerifyRequest{Nonce: n.Nonce})
			wantRefusal(t, err, 400, "missing_quote", "quote")
			n, _ = e.att.Nonce(ctx)
			_, err = e.att.Verify(ctx, client.VerifyRequest{Quote: []byte("garbage"), Nonce: n.Nonce})
			wantRefusal(t, err, 403, "malformed_quote", "does not parse")
			_, err = e.att.CreatePolicy(ctx, json.RawMessage(`{"mr_enclave":["12"]}`))
			wantRefusal(t, err, 400, "invalid_policy", "mr_enclave")
			_, err = e.att.CreatePolicy(ctx, json.RawMessage(`{"no_such_field":1}`))
			wantRefusal(t, err, 400, "invalid_policy", "no_such_field")

			// The audit log records refusals with their reason.
			e.inst.Stop()
			logData, err := os.ReadFile(filepath.Join(e.inst.DataDir, "audit.log"))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{`"result":"report_data_mismatch"`, `"result":"nonce_expired"`, `"result":"nonce_unknown_or_used"`,
				`"result":"policy_refused"`, `"api":"bigdl-as"`, `"api":"ehsm"`, `"simulated: true"`} {
				if !strings.Contains(string(logData), want) {
					t.Errorf("audit log lacks %s", want)
				}
			}
			if strings.Contains(string(logData), e.cfg.APIKey) {
				t.Error("audit log contains an API key")
			}
		})
	}
}

func TestAttestSimulatedRefusedWithoutFlag(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			e := startAS(t, st, false, nil)
			var err error
			if e.sim, err = sim.Init(t.TempDir()); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			res, err := e.attest(abi.SGX, false, nil, "")
			wantRefusal(t, err, 403, "simulated_refused", "simulated quote refused: start the server with --allow-simulation")
			_ = res
			q := base64.StdEncoding.EncodeToString(e.quote(abi.TDX, measurements(false, [64]byte{})))
			code, out := e.bigdl("/verifyQuote", e.cred(map[string]any{"quote": q}))
			if code != 400 || out["result"] != -1.0 || !strings.Contains(out["message"].(string), "--allow-simulation") {
				t.Fatalf("BigDL: %d %v", code, out)
			}
			r := newRaw(t, e.inst, e.cfg)
			v := r.call("VerifyQuote", `{"quote":"`+q+`","nonce":"test"}`)
			if v.Code != 200 || v.Result["result"] != float64(0xA006) || !strings.Contains(v.Message, "--allow-simulation") {
				t.Fatalf("eHSM: %d %q %v", v.Code, v.Message, v.Result)
			}
			// Nothing falls back: a policy allowing simulation does not help.
			pol, err := e.att.CreatePolicy(ctx, json.RawMessage(`{"allow_simulated":true}`))
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.attest(abi.SGX, false, nil, pol.ID)
			wantRefusal(t, err, 403, "simulated_refused", "--allow-simulation")
			if _, err := os.Stat(filepath.Join(e.inst.DataDir, "sim")); !os.IsNotExist(err) {
				t.Fatalf("a simulation PKI was created without --allow-simulation: %v", err)
			}
		})
	}
}

func TestBigDLASListenerBanner(t *testing.T) {
	e := startAS(t, "sqlite", false, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.inst.Server.Serve(ctx, server.ASListener{Listener: l}) }()
	t.Cleanup(func() { cancel(); <-done })
	base := "https://" + l.Addr().String()
	resp, err := e.http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Welcome to BigDL Remote Attestation Service") {
		t.Fatalf("AS banner: %d %q", resp.StatusCode, body)
	}
	// The main listener keeps the BigDL KMS banner; the AS routes work on both.
	resp, _ = e.http.Get(e.inst.URL + "/")
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "Remote Attestation") {
		t.Fatalf("main listener banner: %q", body)
	}
	b, _ := json.Marshal(e.cred(map[string]any{"policyType": "TDXMRTDPolicy", "mrTD": "ab"}))
	resp, err = e.http.Post(base+"//registerPolicy", "application/json", bytes.NewReader(b))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("registerPolicy on the AS listener: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
}

// TestEHSMBindNonce: with --ehsm-bind-nonce, eHSM VerifyQuote accepts only
// quotes whose report data starts with SHA-256(decoded nonce).
func TestEHSMBindNonce(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) { c.AllowSimulation = true; c.EHSMBindNonce = true }})
	_, cfg := inst.Enroll(t)
	r := newRaw(t, inst, cfg)
	simTEE, err := sim.Load(filepath.Join(inst.DataDir, "sim"))
	if err != nil {
		t.Fatal(err)
	}
	nonce := []byte("a fresh challenge")
	h := sha256.Sum256(nonce)
	verifyWith := func(rd []byte) envelopeResp {
		var m sim.Measurements
		copy(m.ReportData[:], rd)
		q, err := simTEE.Quote("sgx", m)
		if err != nil {
			t.Fatal(err)
		}
		return r.call("VerifyQuote", `{"quote":"`+base64.StdEncoding.EncodeToString(q)+`","nonce":"`+base64.StdEncoding.EncodeToString(nonce)+`"}`)
	}
	if res := verifyWith(h[:]); res.Code != 200 || res.Result["result"] != 0.0 {
		t.Fatalf("bound nonce: %+v", res)
	}
	if res := verifyWith([]byte("something else")); res.Code != 200 || res.Result["result"] != float64(0xA006) || !strings.Contains(res.Message, "SHA-256(nonce)") {
		t.Fatalf("unbound nonce: %+v", res)
	}
}

// TestAttestTDXQuoteV5: the native flow accepts a TDX quote v5 (TD report
// 1.0 and 1.5 bodies, simulated TEE) and its token carries the TD's
// measurements; the same quote with a changed body is refused.
func TestAttestTDXQuoteV5(t *testing.T) {
	e := startAS(t, "sqlite", true, nil)
	ctx := context.Background()
	runtime := []byte("v5 runtime data")
	for _, bt := range []uint16{abi.BodyTypeTD10, abi.BodyTypeTD15} {
		n, err := e.att.Nonce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := measurements(false, bind(n.Nonce, runtime))
		q, err := e.sim.QuoteV5(m, bt)
		if err != nil {
			t.Fatal(err)
		}
		res, err := e.att.Verify(ctx, client.VerifyRequest{Quote: q, Nonce: n.Nonce, RuntimeData: runtime})
		if err != nil {
			t.Fatalf("body type %d: %v", bt, err)
		}
		if res.Claims.TEE != "tdx" || res.Claims.Measurements.MRTD != hex.EncodeToString(m.MRTD[:]) || !res.Claims.Simulated {
			t.Fatalf("body type %d: claims %+v", bt, res.Claims)
		}
		n, _ = e.att.Nonce(ctx)
		q, _ = e.sim.QuoteV5(measurements(false, bind(n.Nonce, runtime)), bt)
		q[54+136] ^= 1 // MRTD
		_, err = e.att.Verify(ctx, client.VerifyRequest{Quote: q, Nonce: n.Nonce, RuntimeData: runtime})
		wantRefusal(t, err, 403, "quote_not_verified", "(quote_signature)")
	}
}
