package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ppml-project/ppml/quote/quotetest"

	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/collateral"
)

// vecDir is the repository's DCAP vector set (quote/testdata/dcap).
var vecDir = quotetest.Dir()

var vectors = []string{"sgx-phala", "tdx-v4-oasis", "tdx-v4-oasis-out-of-date"}

type vector struct {
	name     string
	quote    []byte
	col      *collateral.Collateral
	at       time.Time
	expected map[string]any
}

func loadVector(t testing.TB, name string) *vector {
	t.Helper()
	dir := filepath.Join(vecDir, name)
	q, err := os.ReadFile(filepath.Join(dir, "quote.bin"))
	if err != nil {
		t.Fatal(err)
	}
	col, err := collateral.LoadFile(filepath.Join(dir, "collateral.json"))
	if err != nil {
		t.Fatal(err)
	}
	eb, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp map[string]any
	if err := json.Unmarshal(eb, &exp); err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339, exp["at"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return &vector{name: name, quote: q, col: col, at: at, expected: exp}
}

func at(t time.Time) func() time.Time { return func() time.Time { return t } }

func run(t testing.TB, q []byte, col *collateral.Collateral, now time.Time) (*Result, error) {
	t.Helper()
	return Verify(q, col, Options{Now: at(now)})
}

func TestEmbeddedRootFingerprint(t *testing.T) {
	sum := sha256.Sum256(IntelRootCA().Raw)
	want := "44a0196b2b99f889b8e149e95b807a350e74249643 99e885a7cbb8ccfab674d3"
	want = strings.ReplaceAll(want, " ", "")
	if got := hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("embedded root fingerprint %s, want %s", got, want)
	}
	spki := sha256.Sum256(IntelRootCA().RawSubjectPublicKeyInfo)
	if got := hex.EncodeToString(spki[:]); got != "a0af031289f5d5d4132f9186068a7fc13628633ba235777472e29b6b6c67a49e" {
		t.Fatalf("SPKI hash %s", got)
	}
	if !bytes.Equal(quotetest.Read(t, "intel_sgx_root_ca.pem"), intelRootPEM) {
		t.Fatal("embedded root differs from testdata/dcap/intel_sgx_root_ca.pem")
	}
}

func TestVectors(t *testing.T) {
	for _, name := range vectors {
		t.Run(name, func(t *testing.T) {
			v := loadVector(t, name)
			res, err := run(t, v.quote, v.col, v.at)
			exp := v.expected
			if res.Verified != exp["verified"].(bool) {
				t.Fatalf("verified=%v want %v (err %v)", res.Verified, exp["verified"], err)
			}
			if (err == nil) != res.Verified {
				t.Fatalf("error %v inconsistent with verified=%v", err, res.Verified)
			}
			if res.Simulated {
				t.Error("real vector marked simulated")
			}
			var status any
			if res.TCBStatus != nil {
				status = *res.TCBStatus
			}
			if status != exp["tcb_status"] {
				t.Errorf("tcb_status %v want %v", status, exp["tcb_status"])
			}
			if f, _ := exp["failure"].(string); f != res.Failure {
				t.Errorf("failure %q want %q (%s)", res.Failure, f, res.Error)
			}
			var wantAdv []string
			for _, a := range exp["advisory_ids"].([]any) {
				wantAdv = append(wantAdv, a.(string))
			}
			gotAdv := slices.Clone(res.AdvisoryIDs)
			slices.Sort(gotAdv)
			if !slices.Equal(gotAdv, wantAdv) && !(len(gotAdv) == 0 && len(wantAdv) == 0) {
				t.Errorf("advisory_ids %v want %v", gotAdv, wantAdv)
			}
			// Compare every scalar field of the result JSON that expected.json has.
			rb, _ := json.Marshal(res)
			var got map[string]any
			json.Unmarshal(rb, &got)
			for _, k := range []string{"tee", "crl_checked", "collateral_expired", "fmspc", "mr_enclave", "mr_signer",
				"isv_prod_id", "isv_svn", "debug", "report_data", "mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3",
				"td_attributes", "tee_tcb_svn"} {
				if ev, ok := exp[k]; ok && got[k] != ev {
					t.Errorf("%s = %v, want %v", k, got[k], ev)
				}
			}
			d := exp["detail"].(map[string]any)
			if w := d["collateral_window"].(map[string]any)["not_after"].(string); res.CollateralExpiresAt == nil || res.CollateralExpiresAt.Format(time.RFC3339) != w {
				t.Errorf("collateral_expires_at %v, want %s", res.CollateralExpiresAt, w)
			}
			if w := d["collateral_window"].(map[string]any)["not_before"].(string); res.Detail.CollateralNotBefore == nil || res.Detail.CollateralNotBefore.Format(time.RFC3339) != w {
				t.Errorf("collateral_not_before %v, want %s (the latest start of the collateral's parts)", res.Detail.CollateralNotBefore, w)
			}
			if w, ok := d["qe_tcb_status"]; ok && res.Detail.QETCBStatus != w {
				t.Errorf("qe status %s want %v", res.Detail.QETCBStatus, w)
			}
			if w, ok := d["tdx_module_tcb_status"]; ok && res.Detail.TDXModuleTCBStatus != w {
				t.Errorf("module status %s want %v", res.Detail.TDXModuleTCBStatus, w)
			}
			if w, ok := d["matched_tcb_date"]; ok && (res.Detail.MatchedTCBDate == nil || res.Detail.MatchedTCBDate.Format(time.RFC3339) != w) {
				t.Errorf("matched date %v want %v", res.Detail.MatchedTCBDate, w)
			}
			pckExp := d["pck"].(map[string]any)
			if res.Detail.PCK.CPUSVN != pckExp["cpusvn"] || float64(res.Detail.PCK.PCESVN) != pckExp["pcesvn"] || res.Detail.PCK.IssuerCN != pckExp["issuer_cn"] || float64(res.Detail.PCK.SGXType) != pckExp["sgx_type"] {
				t.Errorf("pck detail %+v want %v", res.Detail.PCK, pckExp)
			}
		})
	}
}

func flip(b []byte, off int) []byte {
	c := slices.Clone(b)
	c[off] ^= 0x01
	return c
}

func wantFail(t *testing.T, res *Result, err error, code string) {
	t.Helper()
	if res.Verified || err == nil {
		t.Fatalf("verified despite mutation (want %s)", code)
	}
	var ve *Error
	if !errors.As(err, &ve) {
		t.Fatalf("error %T is not *Error", err)
	}
	if ve.Code != code {
		t.Fatalf("failure %q (%s), want %q", ve.Code, ve.Msg, code)
	}
}

// flipCertSig flips a byte inside the signature of the n-th certificate of
// the PEM chain embedded in the quote, keeping the PEM well formed.
func flipCertSig(t *testing.T, quote []byte, n int) []byte {
	q, err := abi.ParseQuote(quote)
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(quote, q.PCKChainPEM)
	pemText := string(q.PCKChainPEM)
	blocks := strings.SplitAfter(pemText, "-----END CERTIFICATE-----")
	blk := blocks[n]
	b64Start := strings.Index(blk, "-----BEGIN CERTIFICATE-----") + len("-----BEGIN CERTIFICATE-----")
	b64End := strings.Index(blk, "-----END CERTIFICATE-----")
	body := blk[b64Start:b64End]
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(body), ""))
	if err != nil {
		t.Fatal(err)
	}
	der[len(der)-5] ^= 0x01 // inside the signature value
	enc := base64.StdEncoding.EncodeToString(der)
	// Re-wrap with the original line structure.
	var out strings.Builder
	pos := 0
	for _, line := range strings.SplitAfter(body, "\n") {
		trimmed := strings.TrimSpace(line)
		out.WriteString(strings.Replace(line, trimmed, enc[pos:pos+len(trimmed)], 1))
		pos += len(trimmed)
	}
	newBlk := blk[:b64Start] + out.String() + blk[b64End:]
	if len(newBlk) != len(blk) {
		t.Fatal("re-encoding changed length")
	}
	offset := start + len(strings.Join(blocks[:n], ""))
	c := slices.Clone(quote)
	copy(c[offset:], newBlk)
	return c
}

func TestTamper(t *testing.T) {
	type region struct {
		name string
		off  int
		code string
	}
	cases := map[string][]region{
		"sgx-phala": {
			{"body mr_enclave", 120, FailQuoteSignature},
			{"body report_data", 400, FailQuoteSignature},
			{"header", 30, FailQuoteSignature},
			{"quote signature", 450, FailQuoteSignature},
			{"attestation key", 510, FailQEReportData},
			{"QE report", 600, FailQEReportSignature},
			{"QE report signature", 960, FailQEReportSignature},
		},
		"tdx-v4-oasis": {
			{"body mr_td", 200, FailQuoteSignature},
			{"body rtmr0", 380, FailQuoteSignature},
			{"quote signature", 650, FailQuoteSignature},
			{"attestation key", 710, FailQEReportData},
			{"QE report", 800, FailQEReportSignature},
			{"QE report signature", 1160, FailQEReportSignature},
		},
	}
	for name, regions := range cases {
		v := loadVector(t, name)
		for _, r := range regions {
			t.Run(name+"/"+r.name, func(t *testing.T) {
				res, err := run(t, flip(v.quote, r.off), v.col, v.at)
				wantFail(t, res, err, r.code)
			})
		}
		for i, what := range []string{"leaf", "intermediate"} {
			t.Run(name+"/cert "+what, func(t *testing.T) {
				res, err := run(t, flipCertSig(t, v.quote, i), v.col, v.at)
				wantFail(t, res, err, FailPCKChain)
			})
		}
		t.Run(name+"/cert root", func(t *testing.T) {
			res, err := run(t, flipCertSig(t, v.quote, 2), v.col, v.at)
			wantFail(t, res, err, FailPCKChain)
		})
	}
}

func TestWrongRoot(t *testing.T) {
	for _, name := range []string{"sgx-phala", "tdx-v4-oasis"} {
		v := loadVector(t, name)
		q, _ := abi.ParseQuote(v.quote)
		certs, _ := collateral.ParseChain(q.PCKChainPEM)
		res, err := Verify(v.quote, v.col, Options{Now: at(v.at), Root: certs[1]})
		wantFail(t, res, err, FailPCKChain)
		if !res.Simulated {
			t.Error("non-Intel root must mark the result simulated")
		}
	}
}

func TestCollateralTamper(t *testing.T) {
	v := loadVector(t, "sgx-phala")
	mut := func(f func(c *collateral.Collateral)) *collateral.Collateral {
		c := *v.col
		f(&c)
		return &c
	}
	flipHex := func(s string) string {
		b := []byte(s)
		if b[0] == '0' {
			b[0] = '1'
		} else {
			b[0] = '0'
		}
		return string(b)
	}
	cases := []struct {
		name string
		col  *collateral.Collateral
		code string
	}{
		{"tcb_info_signature", mut(func(c *collateral.Collateral) { c.TCBInfoSignature = flipHex(c.TCBInfoSignature) }), FailTCBInfoSignature},
		{"tcb_info text", mut(func(c *collateral.Collateral) {
			c.TCBInfo = strings.Replace(c.TCBInfo, `"tcbEvaluationDataNumber":17`, `"tcbEvaluationDataNumber":18`, 1)
		}), FailTCBInfoSignature},
		{"qe_identity_signature", mut(func(c *collateral.Collateral) { c.QEIdentitySignature = flipHex(c.QEIdentitySignature) }), FailQEIdentitySignature},
		{"qe_identity text", mut(func(c *collateral.Collateral) {
			c.QEIdentity = strings.Replace(c.QEIdentity, `"isvprodid":1`, `"isvprodid":2`, 1)
		}), FailQEIdentitySignature},
		{"no tcb issuer root", mut(func(c *collateral.Collateral) {
			i := strings.Index(c.TCBInfoIssuerChain, "-----END CERTIFICATE-----")
			c.TCBInfoIssuerChain = c.TCBInfoIssuerChain[:i+len("-----END CERTIFICATE-----")] + "\n"
		}), FailTCBInfoChain},
		{"pck crl corrupted", mut(func(c *collateral.Collateral) { c.PCKCRL = c.PCKCRL[:len(c.PCKCRL)-2] + "00" }), FailPCKCRL},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := run(t, v.quote, c.col, v.at)
			wantFail(t, res, err, c.code)
		})
	}
}

func TestTimes(t *testing.T) {
	sgx := loadVector(t, "sgx-phala")
	tdx := loadVector(t, "tdx-v4-oasis")
	mustTime := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	// After nextUpdate: expired, status still computed, signatures fine.
	for _, c := range []struct {
		v  *vector
		at string
	}{{sgx, "2025-07-20T00:00:00Z"}, {tdx, "2024-10-03T00:00:00Z"}} {
		res, err := run(t, c.v.quote, c.v.col, mustTime(c.at))
		wantFail(t, res, err, FailCollateralExpired)
		if !res.CollateralExpired || res.TCBStatus == nil || *res.TCBStatus != c.v.expected["tcb_status"] {
			t.Errorf("%s: expired=%v status=%v", c.v.name, res.CollateralExpired, res.TCBStatus)
		}
	}
	// Before the PCK leaf notBefore.
	res, err := run(t, sgx.quote, sgx.col, mustTime("2023-09-20T21:00:00Z"))
	wantFail(t, res, err, FailPCKCertTime)
	res, err = run(t, tdx.quote, tdx.col, mustTime("2024-09-02T07:15:00Z"))
	wantFail(t, res, err, FailPCKCertTime)
	// Leaf valid, collateral not yet issued.
	res, err = run(t, sgx.quote, sgx.col, mustTime("2025-06-19T08:13:22Z"))
	wantFail(t, res, err, FailCollateralNotYetValid)
	res, err = run(t, tdx.quote, tdx.col, mustTime("2024-09-02T07:20:00Z"))
	wantFail(t, res, err, FailCollateralNotYetValid)
}

func TestFMSPCMismatch(t *testing.T) {
	ood := loadVector(t, "tdx-v4-oasis-out-of-date")
	tdx := loadVector(t, "tdx-v4-oasis")
	res, err := run(t, ood.quote, tdx.col, tdx.at)
	wantFail(t, res, err, FailTCBInfoMismatch)
	// SGX quote with TDX collateral.
	sgx := loadVector(t, "sgx-phala")
	res, err = run(t, sgx.quote, tdx.col, sgx.at)
	wantFail(t, res, err, FailTCBInfoMismatch)
	if !strings.Contains(err.Error(), `id is "TDX", want "SGX"`) {
		t.Errorf("SGX quote with TDX collateral: %v, want the TCB info id named", err)
	}
}

func TestTruncatedAndNoCollateral(t *testing.T) {
	v := loadVector(t, "sgx-phala")
	for _, n := range []int{0, 10, 432, 435, 600, 1100, len(v.quote) - 1} {
		res, err := run(t, v.quote[:n], v.col, v.at)
		wantFail(t, res, err, FailFormat)
	}
	res, err := run(t, v.quote, nil, v.at)
	wantFail(t, res, err, FailNoCollateral)
	if res.MREnclave == "" {
		t.Error("measurements should be filled even without collateral")
	}
	if _, err := New(Options{}); err == nil {
		t.Error("nil clock accepted")
	}
}

func TestTrailingBytes(t *testing.T) {
	v := loadVector(t, "sgx-phala")
	q := append(slices.Clone(v.quote), []byte("some trailing text")...)
	res, err := run(t, q, v.col, v.at)
	if err != nil || res.Detail.TrailingBytes != 18 {
		t.Fatalf("trailing bytes: %v %d", err, res.Detail.TrailingBytes)
	}
	res, err = Verify(q, v.col, Options{Now: at(v.at), RejectTrailingBytes: true})
	wantFail(t, res, err, FailFormat)
}

func TestCacheReuse(t *testing.T) {
	v := loadVector(t, "sgx-phala")
	ver, err := New(Options{Now: at(v.at)})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := ver.Verify(v.quote, v.col); err != nil {
			t.Fatal(err)
		}
	}
	if ver.cols.Len() != 1 || ver.chains.Len() != 1 {
		t.Fatalf("cache sizes %d %d", ver.cols.Len(), ver.chains.Len())
	}
	// A tampered quote with the same (cached) collateral still fails.
	if _, err := ver.Verify(flip(v.quote, 120), v.col); err == nil {
		t.Fatal("tampered quote verified with warm cache")
	}
}

// FuzzVerify mutates real quotes: verification must fail cleanly (never
// panic) and a mutated signed region must never verify.
func FuzzVerify(f *testing.F) {
	type vec struct {
		q   []byte
		col *collateral.Collateral
		at  time.Time
	}
	var vs []vec
	for _, n := range vectors[:2] {
		v := loadVector(f, n)
		vs = append(vs, vec{v.quote, v.col, v.at})
	}
	f.Add(uint8(0), uint16(120), byte(1))
	f.Add(uint8(1), uint16(700), byte(0x80))
	f.Add(uint8(0), uint16(1500), byte(0x10))
	f.Add(uint8(1), uint16(4000), byte(0x04))
	f.Fuzz(func(t *testing.T, which uint8, off uint16, x byte) {
		v := vs[int(which)%len(vs)]
		if x == 0 || int(off) >= len(v.q) {
			return
		}
		q := flip(v.q, int(off))
		q[off] ^= 0x01 ^ x
		res, err := Verify(q, v.col, Options{Now: at(v.at)})
		if res == nil {
			t.Fatal("nil result")
		}
		if (err == nil) != res.Verified {
			t.Fatalf("error %v but verified %v", err, res.Verified)
		}
		// Every byte of these quotes is signed, a signature, a key bound
		// by the QE report, QE auth data bound likewise, or the signed PCK
		// chain: no change verifies, except in the chain's PEM text where
		// the certificates' DER stays as it was (whitespace for whitespace,
		// seed 0f977174dfc937c9; unused low bits of the last base64
		// character before padding, seed 393f9b2698e3c06c; the text's final
		// newline, seed 82ce7fbbfe7a24ae; its NUL padding, seed
		// e0917db668015b87).
		if err == nil {
			pq, _ := abi.ParseQuote(q)
			orig, _ := abi.ParseQuote(v.q)
			pemStart := bytes.Index(v.q, orig.PCKChainPEM)
			// The chain is the quote's last field; its padding after the PEM
			// text counts as part of it.
			inPEM := pemStart >= 0 && int(off) >= pemStart
			if !inPEM || !bytes.Equal(pemDER(pq.PCKChainPEM), pemDER(orig.PCKChainPEM)) {
				t.Fatalf("mutation %#02x -> %#02x at byte %d verified", v.q[off], q[off], off)
			}
			return
		}
		var ve *Error
		if !errors.As(err, &ve) || ve.Code == "" {
			t.Fatalf("mutation at %d: error without a failure code: %v", off, err)
		}
		if pq, perr := abi.ParseQuote(v.q); perr == nil && int(off) >= 48 && int(off) < len(pq.Signed) && ve.Code != FailQuoteSignature {
			t.Fatalf("mutation at %d of the report body: %s, want %s", off, ve.Code, FailQuoteSignature)
		}
	})
}

// pemDER concatenates the DER bytes of every PEM block in b.
func pemDER(b []byte) []byte {
	var der []byte
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return der
		}
		der = append(der, blk.Bytes...)
	}
}
