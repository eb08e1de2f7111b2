package verify

import (
	"slices"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/collateral"
	"github.com/ppml-project/ppml/quote/pck"
)

func TestConverge(t *testing.T) {
	cases := []struct{ sec, plat, want string }{
		{StatusUpToDate, StatusConfigurationNeeded, StatusConfigurationNeeded},
		{StatusOutOfDate, StatusUpToDate, StatusOutOfDate},
		{StatusOutOfDate, StatusSWHardeningNeeded, StatusOutOfDate},
		{StatusOutOfDate, StatusConfigurationNeeded, StatusOutOfDateConfigurationNeeded},
		{StatusOutOfDate, StatusConfigurationAndSWHardeningNeeded, StatusOutOfDateConfigurationNeeded},
		{StatusOutOfDate, StatusOutOfDateConfigurationNeeded, StatusOutOfDateConfigurationNeeded},
		{StatusOutOfDate, StatusRevoked, StatusRevoked},
		{StatusRevoked, StatusUpToDate, StatusRevoked},
	}
	for _, c := range cases {
		if got := converge(c.sec, c.plat); got != c.want {
			t.Errorf("converge(%s, %s) = %s, want %s", c.sec, c.plat, got, c.want)
		}
	}
}

// tdxParts returns the parsed TDX vector with decoded collateral.
func tdxParts(t *testing.T) (*abi.Quote, *pck.Extension, *collateral.TCBInfo, *collateral.QEIdentity) {
	v := loadVector(t, "tdx-v4-oasis")
	ver, _ := New(Options{Now: at(v.at)})
	q, _ := abi.ParseQuote(v.quote)
	pc := ver.checkPCKChain(q.PCKChainPEM)
	p := ver.checkCollateral(v.col)
	if pc.err != nil || p.err != nil {
		t.Fatal(pc.err, p.err)
	}
	return q, pc.ext, p.tcbInfo, p.qeID
}

func TestTDXEvaluationBranches(t *testing.T) {
	q, x, ti, qi := tdxParts(t)
	ev, e := evaluate(q, x, ti, qi)
	if e != nil || ev.final != StatusUpToDate || ev.module != StatusUpToDate {
		t.Fatalf("baseline: %v %+v", e, ev)
	}
	// Module SVN 3 < level isvsvn 4 → TDX_01 level OutOfDate → OutOfDate.
	q2 := *q
	td := *q.TDBody
	td.TEETCBSVN[0] = 3
	q2.TDBody = &td
	ev, e = evaluate(&q2, x, ti, qi)
	if e != nil || ev.module != StatusOutOfDate || ev.final != StatusOutOfDate {
		t.Fatalf("module out of date: %v %+v", e, ev)
	}
	// Module SVN 4 = level isvsvn 4 → that level, UpToDate.
	td.TEETCBSVN[0] = 4
	ev, e = evaluate(&q2, x, ti, qi)
	if e != nil || ev.module != StatusUpToDate || ev.final != StatusUpToDate {
		t.Fatalf("module SVN equal to the level's: %v %+v", e, ev)
	}
	// Module SVN 1: no module level → tcb_not_supported.
	td.TEETCBSVN[0] = 1
	if _, e = evaluate(&q2, x, ti, qi); e == nil || e.Code != FailTCBNotSupported {
		t.Fatalf("no module level: %v", e)
	}
	// Module version 2: no TDX_02 identity.
	td.TEETCBSVN[0], td.TEETCBSVN[1] = 5, 2
	if _, e = evaluate(&q2, x, ti, qi); e == nil || e.Code != FailTDXModuleMismatch {
		t.Fatalf("missing TDX_02: %v", e)
	}
	// Version 0: tdxModule is used, TDX components compared from index 0.
	td.TEETCBSVN = [16]byte{5, 0, 7}
	ev, e = evaluate(&q2, x, ti, qi)
	if e != nil || ev.module != StatusUpToDate || ev.final != StatusUpToDate {
		t.Fatalf("version 0: %v %+v", e, ev)
	}
	td.TEETCBSVN = [16]byte{0, 0, 7}
	if ev, e = evaluate(&q2, x, ti, qi); (e == nil && ev.platform == StatusUpToDate) || (e != nil && e.Code != FailTCBNotSupported) {
		t.Fatalf("version 0 with low module SVN must not match the top level: %v %+v", e, ev)
	}
	// SEAM attributes not matching.
	td.TEETCBSVN = [16]byte{5, 1, 7}
	td.SeamAttributes[0] = 1
	if _, e = evaluate(&q2, x, ti, qi); e == nil || e.Code != FailTDXModuleMismatch {
		t.Fatalf("seam attributes: %v", e)
	}
	// Module identity attributes or mask not 8 bytes: refused, not
	// compared on a prefix (the TCB info parser does not check these lengths).
	td.SeamAttributes[0] = 0
	if _, e = evaluate(&q2, x, ti, qi); e != nil {
		t.Fatalf("seam attributes restored: %v", e)
	}
	for _, which := range []string{"attributes", "mask"} {
		ti2 := *ti
		ti2.TDXModuleIdentities = slices.Clone(ti.TDXModuleIdentities)
		for i := range ti2.TDXModuleIdentities {
			m := &ti2.TDXModuleIdentities[i]
			if which == "attributes" {
				m.Attributes = append(slices.Clone(m.Attributes), 0)
			} else {
				m.AttributesMask = append(slices.Clone(m.AttributesMask), 0)
			}
		}
		_, e = evaluate(&q2, x, &ti2, qi)
		if e == nil || e.Code != FailTDXModuleMismatch || !strings.HasPrefix(e.Msg, "SEAMATTRIBUTES ") {
			t.Fatalf("module identity %s of 9 bytes: %v", which, e)
		}
	}
	// QE OutOfDate converges.
	qi2 := *qi
	qi2.TCBLevels = []collateral.ISVLevel{qi.TCBLevels[0], qi.TCBLevels[0]}
	qi2.TCBLevels[0].TCB.ISVSVN = 99
	qi2.TCBLevels[1].TCBStatus = StatusOutOfDate
	qi2.TCBLevels[1].AdvisoryIDs = []string{"INTEL-SA-QE"}
	ev, e = evaluate(q, x, ti, &qi2)
	if e != nil || ev.qe != StatusOutOfDate || ev.final != StatusOutOfDate {
		t.Fatalf("QE out of date: %v %+v", e, ev)
	}
	r := &Result{}
	ev.fill(r)
	if len(r.AdvisoryIDs) != 1 || r.AdvisoryIDs[0] != "INTEL-SA-QE" {
		t.Fatalf("advisories %v", r.AdvisoryIDs)
	}
	// QE identity mismatch.
	qi2 = *qi
	qi2.ISVProdID = 1
	if _, e = evaluate(q, x, ti, &qi2); e == nil || e.Code != FailQEIdentityMismatch {
		t.Fatalf("QE prod id: %v", e)
	}
}
