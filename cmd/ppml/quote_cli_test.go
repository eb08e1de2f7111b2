package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/quote/quotetest"
)

// dcapDir is the repository's DCAP vector set (quote/testdata/dcap).
var dcapDir = quotetest.Dir()

func runCmd(t *testing.T, args ...string) (map[string]any, string, error) {
	t.Helper()
	var cmd = newQuoteCmd()
	if args[0] == "sim" {
		cmd = newSimCmd()
	}
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args[1:])
	err := cmd.Execute()
	var m map[string]any
	json.Unmarshal(out.Bytes(), &m)
	return m, out.String(), err
}

func TestQuoteVerifyVectors(t *testing.T) {
	for _, v := range []string{"sgx-phala", "tdx-v4-oasis", "tdx-v4-oasis-out-of-date"} {
		eb, err := os.ReadFile(filepath.Join(dcapDir, v, "expected.json"))
		if err != nil {
			t.Fatal(err)
		}
		var exp map[string]any
		json.Unmarshal(eb, &exp)
		got, _, err := runCmd(t, "quote", "verify", "--quote", filepath.Join(dcapDir, v, "quote.bin"),
			"--collateral", filepath.Join(dcapDir, v, "collateral.json"), "--at", exp["at"].(string), "--output", "json")
		if (err == nil) != exp["verified"].(bool) {
			t.Errorf("%s: exit error %v, expected verified %v", v, err, exp["verified"])
		}
		for k, want := range exp {
			switch k {
			case "case", "at", "detail", "source", "signatures_valid", "failure":
				continue
			}
			if gb, _ := json.Marshal(got[k]); string(gb) != mustJSON(want) {
				t.Errorf("%s: %s = %s, want %s", v, k, gb, mustJSON(want))
			}
		}
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestQuoteVerifyPolicyAndExpiry(t *testing.T) {
	q := filepath.Join(dcapDir, "sgx-phala", "quote.bin")
	c := filepath.Join(dcapDir, "sgx-phala", "collateral.json")
	if _, err := os.Stat(q); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pol := func(s string) string {
		p := filepath.Join(dir, "p.json")
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	base := `"accepted_tcb_statuses":["ConfigurationAndSWHardeningNeeded"]`
	// Expired collateral: refused unless the policy allows it; the verdict stays verified:false.
	if _, _, err := runCmd(t, "quote", "verify", "--quote", q, "--collateral", c, "--at", "2025-07-20T00:00:00Z", "--output", "json"); err == nil {
		t.Fatal("expired collateral: exit 0")
	}
	got, _, err := runCmd(t, "quote", "verify", "--quote", q, "--collateral", c, "--at", "2025-07-20T00:00:00Z", "--output", "json",
		"--policy", pol(`{`+base+`,"allow_expired_collateral":true}`))
	if err != nil || got["verified"] != false || got["collateral_expired"] != true || got["policy"].(map[string]any)["accepted"] != true {
		t.Fatalf("allow_expired_collateral: %v %v", err, got)
	}
	// Policy for another MRENCLAVE.
	got, _, err = runCmd(t, "quote", "verify", "--quote", q, "--collateral", c, "--at", "2025-07-01T00:00:00Z", "--output", "json",
		"--policy", pol(`{`+base+`,"mr_enclave":["`+strings.Repeat("68a2", 16)+`"]}`))
	if err == nil || got["verified"] != true || got["policy"].(map[string]any)["accepted"] != false {
		t.Fatalf("other MRENCLAVE: %v %v", err, got)
	}
	// Unknown policy field.
	if _, _, err := runCmd(t, "quote", "verify", "--quote", q, "--collateral", c, "--policy", pol(`{"mrenclave":[]}`)); err == nil || !strings.Contains(err.Error(), `unknown field "mrenclave"`) {
		t.Fatalf("unknown policy field: %v", err)
	}
	// Collateral directory.
	cd := t.TempDir()
	b, _ := os.ReadFile(c)
	os.WriteFile(filepath.Join(cd, "x.json"), b, 0o644)
	if got, _, err := runCmd(t, "quote", "verify", "--quote", q, "--collateral-dir", cd, "--at", "2025-07-01T00:00:00Z", "--output", "json"); err != nil || got["verified"] != true {
		t.Fatalf("collateral dir: %v", err)
	}
	// show
	got, _, err = runCmd(t, "quote", "show", "--quote", q, "--output", "json")
	if err != nil || got["mr_enclave"] != "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb" || got["verified"] != nil {
		t.Fatalf("show: %v %v", err, got)
	}
}

func TestSimCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	if _, _, err := runCmd(t, "sim", "init", "--sim-dir", dir); err != nil {
		t.Fatal(err)
	}
	mr := strings.Repeat("ab", 32)
	sq := filepath.Join(dir, "sgx.q")
	if _, _, err := runCmd(t, "sim", "quote", "--sim-dir", dir, "--tee", "sgx", "--mr-enclave", mr, "--isv-prod-id", "3", "--report-data", "01", "--out", sq); err != nil {
		t.Fatal(err)
	}
	got, _, err := runCmd(t, "quote", "verify", "--quote", sq, "--sim-dir", dir, "--collateral", filepath.Join(dir, "collateral-sgx.json"), "--output", "json")
	if err != nil || got["simulated"] != true || got["mr_enclave"] != mr || got["isv_prod_id"] != 3.0 {
		t.Fatalf("sim sgx: %v %v", err, got)
	}
	// Against the Intel root it fails.
	if _, _, err := runCmd(t, "quote", "verify", "--quote", sq, "--collateral", filepath.Join(dir, "collateral-sgx.json")); err == nil {
		t.Fatal("sim quote verified against the Intel root")
	}
	tq := filepath.Join(dir, "tdx.q")
	mrtd := strings.Repeat("cd", 48)
	if _, _, err := runCmd(t, "sim", "quote", "--sim-dir", dir, "--tee", "tdx", "--mr-td", mrtd, "--rtmr3", strings.Repeat("ef", 48), "--debug", "--out", tq); err != nil {
		t.Fatal(err)
	}
	got, _, err = runCmd(t, "quote", "verify", "--quote", tq, "--sim-dir", dir, "--collateral-dir", dir, "--output", "json")
	if err != nil || got["simulated"] != true || got["mr_td"] != mrtd || got["debug"] != true || got["rtmr3"] != strings.Repeat("ef", 48) {
		t.Fatalf("sim tdx: %v %v", err, got)
	}
	if _, _, err := runCmd(t, "sim", "quote", "--sim-dir", dir, "--tee", "tdx", "--mr-enclave", mr, "--out", tq); err == nil {
		t.Fatal("SGX flag accepted for TDX")
	}
}

// The text output says what the JSON says (the verdict without its
// diagnostics for verify; no verdict at all for show), a line per member.
func TestQuoteTextOutput(t *testing.T) {
	q := filepath.Join(dcapDir, "sgx-phala", "quote.bin")
	c := filepath.Join(dcapDir, "sgx-phala", "collateral.json")
	pol := filepath.Join(t.TempDir(), "p.json")
	os.WriteFile(pol, []byte(`{"accepted_tcb_statuses":["UpToDate"]}`), 0o600)
	args := []string{"quote", "verify", "--quote", q, "--collateral", c, "--at", "2025-07-01T00:00:00Z", "--policy", pol}
	asJSON, _, _ := runCmd(t, append(args, "--output", "json")...)
	_, text, err := runCmd(t, args...)
	if err == nil || !strings.Contains(err.Error(), "quote refused by policy") {
		t.Fatalf("verify: %v", err)
	}
	for k := range asJSON {
		if has := strings.Contains("\n"+text, "\n"+k+":"); has == (k == "detail") {
			t.Errorf("verify text: member %s shown %v:\n%s", k, has, text)
		}
	}
	for _, want := range []string{
		"tee:                   sgx\nverified:              true\n",
		"advisory_ids:          [INTEL-SA-00289 INTEL-SA-00615]\n",
		"mr_enclave:            33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb\n",
		"policy:\n  accepted:            false\n  reasons:\n    - tcb_status ConfigurationAndSWHardeningNeeded not in accepted_tcb_statuses [UpToDate]\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("verify text lacks %q:\n%s", want, text)
		}
	}
	asJSON, _, err = runCmd(t, "quote", "show", "--quote", q, "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	_, text, err = runCmd(t, "quote", "show", "--quote", q)
	if err != nil {
		t.Fatal(err)
	}
	for k := range asJSON {
		if !strings.Contains("\n"+text, "\n"+k+":") {
			t.Errorf("show text lacks %s:\n%s", k, text)
		}
	}
	for _, want := range []string{"tee:                   sgx\n", "quote_version:         3\n", "trailing_bytes:        0\n",
		"pck:\n  fmspc:               00a067110000\n", "  ca_type:             processor\n", "  not_after:           2030-09-20T21:53:43Z\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("show text lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "verified") || strings.Contains(text, "tcb_status") {
		t.Errorf("show text has a verdict:\n%s", text)
	}
}
