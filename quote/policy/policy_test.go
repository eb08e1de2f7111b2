package policy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml-project/ppml/quote/quotetest"

	"github.com/ppml-project/ppml/quote/collateral"
	"github.com/ppml-project/ppml/quote/verify"
)

// vecDir is the repository's DCAP vector set (quote/testdata/dcap).
var vecDir = quotetest.Dir()

func verifyVector(t *testing.T, name string, at time.Time) *verify.Result {
	t.Helper()
	q, err := os.ReadFile(filepath.Join(vecDir, name, "quote.bin"))
	if err != nil {
		t.Fatal(err)
	}
	col, err := collateral.LoadFile(filepath.Join(vecDir, name, "collateral.json"))
	if err != nil {
		t.Fatal(err)
	}
	if at.IsZero() {
		var exp struct{ At time.Time }
		b, _ := os.ReadFile(filepath.Join(vecDir, name, "expected.json"))
		json.Unmarshal(b, &exp)
		at = exp.At
	}
	res, _ := verify.Verify(q, col, verify.Options{Now: func() time.Time { return at }})
	return res
}

func mustParse(t *testing.T, s string) *Policy {
	t.Helper()
	p, err := Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const sgxMR = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"

func TestSGXPolicy(t *testing.T) {
	res := verifyVector(t, "sgx-phala", time.Time{})
	ok := `{"tee":"sgx","mr_enclave":["` + strings.ToUpper(sgxMR) + `"],"isv_prod_id":0,"min_isv_svn":0,
		"accepted_tcb_statuses":["UpToDate","ConfigurationAndSWHardeningNeeded"],
		"accepted_advisory_ids":["INTEL-SA-00289","INTEL-SA-00615"],
		"report_data":"48656c6c6f2c20776f726c6421"}`
	if d := mustParse(t, ok).Evaluate(res); !d.Accepted {
		t.Fatalf("refused: %v", d.Reasons)
	}
	// Defaults: only UpToDate accepted.
	d := mustParse(t, `{"mr_enclave":["`+sgxMR+`"]}`).Evaluate(res)
	if d.Accepted || !strings.Contains(strings.Join(d.Reasons, ";"), "tcb_status ConfigurationAndSWHardeningNeeded not in accepted_tcb_statuses") {
		t.Fatalf("default status accepted: %v", d.Reasons)
	}
	// Another MRENCLAVE.
	other := strings.Repeat("68a2", 16)
	d = mustParse(t, `{"mr_enclave":["`+other+`"],"accepted_tcb_statuses":["ConfigurationAndSWHardeningNeeded"]}`).Evaluate(res)
	if d.Accepted || len(d.Reasons) != 1 || !strings.HasPrefix(d.Reasons[0], "mr_enclave "+sgxMR+" not in policy [68a268a268a268a2…]") {
		t.Fatalf("other MRENCLAVE: %v", d.Reasons)
	}
	for _, c := range []struct{ pol, reason string }{
		{`{"tee":"tdx"}`, `tee "sgx", policy requires "tdx"`},
		{`{"isv_prod_id":1}`, "isv_prod_id 0, policy requires 1"},
		{`{"min_isv_svn":2}`, "isv_svn 0 below policy minimum 2"},
		{`{"accepted_advisory_ids":["INTEL-SA-00289"]}`, "advisory INTEL-SA-00615 not in accepted_advisory_ids"},
		{`{"report_data":"00"}`, "report_data 48656c6c6f2c2077… does not equal"},
		{`{"mr_td":["` + strings.Repeat("00", 48) + `"]}`, "mr_td required by the policy but the sgx quote has none"},
	} {
		d := mustParse(t, c.pol).Evaluate(res)
		if d.Accepted || !strings.Contains(strings.Join(d.Reasons, ";"), c.reason) {
			t.Errorf("%s: %v", c.pol, d.Reasons)
		}
	}
}

func TestExpiredCollateral(t *testing.T) {
	res := verifyVector(t, "sgx-phala", time.Date(2025, 7, 20, 0, 0, 0, 0, time.UTC))
	if res.Verified || !res.CollateralExpired {
		t.Fatal("expected expired collateral")
	}
	base := `"accepted_tcb_statuses":["ConfigurationAndSWHardeningNeeded"]`
	if d := mustParse(t, `{`+base+`}`).Evaluate(res); d.Accepted {
		t.Fatal("expired collateral accepted by default")
	}
	if d := mustParse(t, `{`+base+`,"allow_expired_collateral":true}`).Evaluate(res); !d.Accepted {
		t.Fatalf("allow_expired_collateral refused: %v", d.Reasons)
	}
}

func TestTDXPolicy(t *testing.T) {
	res := verifyVector(t, "tdx-v4-oasis", time.Time{})
	mrtd := "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
	d := mustParse(t, `{"tee":"tdx","mr_td":["`+mrtd+`"]}`).Evaluate(res)
	if d.Accepted || !strings.Contains(d.Reasons[0], "CRLs were not checked") {
		t.Fatalf("CRL requirement not enforced: %v", d.Reasons)
	}
	if d := mustParse(t, `{"tee":"tdx","mr_td":["`+mrtd+`"],"require_crl":false}`).Evaluate(res); !d.Accepted {
		t.Fatalf("refused: %v", d.Reasons)
	}
	d = mustParse(t, `{"rtmr3":["`+strings.Repeat("11", 48)+`"],"require_crl":false}`).Evaluate(res)
	if d.Accepted {
		t.Fatal("rtmr3 mismatch accepted")
	}
	// Unverified quote (no TCB level) is refused whatever the policy.
	res = verifyVector(t, "tdx-v4-oasis-out-of-date", time.Time{})
	d = mustParse(t, `{"require_crl":false,"allow_expired_collateral":true,"accepted_tcb_statuses":["OutOfDate"]}`).Evaluate(res)
	if d.Accepted || !strings.Contains(d.Reasons[0], "tcb_not_supported") {
		t.Fatalf("unverified accepted: %v", d.Reasons)
	}
}

func TestDebugAndSimulated(t *testing.T) {
	st := "UpToDate"
	r := &verify.Result{TEE: "tdx", Verified: true, Debug: true, TCBStatus: &st, CRLChecked: true, Simulated: true}
	d := mustParse(t, `{}`).Evaluate(r)
	if d.Accepted || len(d.Reasons) != 2 {
		t.Fatalf("debug/simulated: %v", d.Reasons)
	}
	if d := mustParse(t, `{"allow_debug":true,"allow_simulated":true}`).Evaluate(r); !d.Accepted {
		t.Fatal(d.Reasons)
	}
}

func TestStrictParse(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"mr_enclav":["00"]}`, `unknown field "mr_enclav"`},
		{`{"tee":"sev"}`, `tee "sev"`},
		{`{"mr_enclave":["abcd"]}`, "is 2 bytes, want 32"},
		{`{"mr_td":["zz"]}`, "is not hex"},
		{`{"accepted_tcb_statuses":["Fine"]}`, `unknown status "Fine"`},
		{`{"isv_prod_id":-1}`, "isv_prod_id"},
		{`{} {}`, "trailing data"},
	} {
		_, err := Parse([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.in, err, c.want)
		}
	}
}
