package verify

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/collateral"
	"github.com/ppml-project/ppml/quote/pck"
)

// TCB statuses.
const (
	StatusUpToDate                          = "UpToDate"
	StatusSWHardeningNeeded                 = "SWHardeningNeeded"
	StatusConfigurationNeeded               = "ConfigurationNeeded"
	StatusConfigurationAndSWHardeningNeeded = "ConfigurationAndSWHardeningNeeded"
	StatusOutOfDate                         = "OutOfDate"
	StatusOutOfDateConfigurationNeeded      = "OutOfDateConfigurationNeeded"
	StatusRevoked                           = "Revoked"
)

// evaluation is the outcome of TCB evaluation.
type evaluation struct {
	final              string
	platform           string
	platformAdvisories []string
	sgxLevel           string
	module             string
	moduleAdvisories   []string
	qe                 string
	qeAdvisories       []string
	matchedDate        time.Time
}

func (ev *evaluation) fill(r *Result) {
	r.Detail.PlatformTCBStatus = ev.platform
	r.Detail.PlatformAdvisoryIDs = ev.platformAdvisories
	r.Detail.SGXTCBLevelStatus = ev.sgxLevel
	r.Detail.TDXModuleTCBStatus = ev.module
	r.Detail.TDXModuleAdvisoryIDs = ev.moduleAdvisories
	r.Detail.QETCBStatus = ev.qe
	r.Detail.QEAdvisoryIDs = ev.qeAdvisories
	if !ev.matchedDate.IsZero() {
		d := ev.matchedDate.UTC()
		r.Detail.MatchedTCBDate = &d
	}
	if ev.final != "" {
		s := ev.final
		r.TCBStatus = &s
		r.AdvisoryIDs = union(ev.platformAdvisories, ev.qeAdvisories, ev.moduleAdvisories)
	}
}

// union returns the deduplicated advisories in order of first appearance.
func union(lists ...[]string) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, l := range lists {
		for _, a := range l {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// converge applies a secondary status (TDX module or QE) to a platform
// status (§7.2 step 4, §7.3).
func converge(secondary, platform string) string {
	switch secondary {
	case StatusRevoked:
		return StatusRevoked
	case StatusOutOfDate:
		switch platform {
		case StatusUpToDate, StatusSWHardeningNeeded:
			return StatusOutOfDate
		case StatusConfigurationNeeded, StatusConfigurationAndSWHardeningNeeded:
			return StatusOutOfDateConfigurationNeeded
		}
	}
	return platform
}

// qeLevel matches the QE report against the QE identity and returns its
// TCB level.
func qeLevel(qe *abi.EnclaveReport, qi *collateral.QEIdentity) (*collateral.ISVLevel, *Error) {
	if !bytes.Equal(qe.MRSigner[:], qi.MRSigner) {
		return nil, fail(FailQEIdentityMismatch, "QE MRSIGNER %s does not match the QE identity %s", hx(qe.MRSigner[:]), hx(qi.MRSigner))
	}
	if int(qe.ISVProdID) != qi.ISVProdID {
		return nil, fail(FailQEIdentityMismatch, "QE ISVPRODID %d does not match the QE identity %d", qe.ISVProdID, qi.ISVProdID)
	}
	for i := range 4 {
		if qe.MiscSelect[i]&qi.MiscSelectMask[i] != qi.MiscSelect[i] {
			return nil, fail(FailQEIdentityMismatch, "QE MISCSELECT %s masked with %s does not equal %s", hx(qe.MiscSelect[:]), hx(qi.MiscSelectMask), hx(qi.MiscSelect))
		}
	}
	for i := range 16 {
		if qe.Attributes[i]&qi.AttributesMask[i] != qi.Attributes[i] {
			return nil, fail(FailQEIdentityMismatch, "QE ATTRIBUTES %s masked with %s does not equal %s", hx(qe.Attributes[:]), hx(qi.AttributesMask), hx(qi.Attributes))
		}
	}
	for i := range qi.TCBLevels {
		if qi.TCBLevels[i].TCB.ISVSVN <= int(qe.ISVSVN) {
			return &qi.TCBLevels[i], nil
		}
	}
	return nil, fail(FailTCBNotSupported, "no QE identity TCB level for QE ISVSVN %d", qe.ISVSVN)
}

func sgxMatch(l *collateral.TCBLevel, x *pck.Extension) bool {
	for i := range 16 {
		if int(x.CompSVN[i]) < l.TCB.SGXComponents[i].SVN {
			return false
		}
	}
	return int(x.PCESVN) >= l.TCB.PCESVN
}

// evaluate performs the TCB evaluation (§7). It returns the partial
// evaluation on failure too, for diagnostics.
func evaluate(q *abi.Quote, x *pck.Extension, ti *collateral.TCBInfo, qi *collateral.QEIdentity) (*evaluation, *Error) {
	ev := &evaluation{}
	ql, e := qeLevel(q.QEReport, qi)
	if e != nil {
		return ev, e
	}
	ev.qe, ev.qeAdvisories = ql.TCBStatus, nonNil(ql.AdvisoryIDs)

	var level *collateral.TCBLevel
	if q.TEE == abi.SGX {
		for i := range ti.TCBLevels {
			if sgxMatch(&ti.TCBLevels[i], x) {
				level = &ti.TCBLevels[i]
				break
			}
		}
		if level == nil {
			return ev, fail(FailTCBNotSupported, "no SGX TCB level matches the PCK certificate (component SVNs %v, PCESVN %d)", x.CompSVN, x.PCESVN)
		}
		ev.platform, ev.platformAdvisories, ev.matchedDate = level.TCBStatus, nonNil(level.AdvisoryIDs), level.TCBDate
		ev.final = converge(ev.qe, ev.platform)
		return ev, nil
	}

	// TDX.
	td := q.TDBody
	svn := td.TEETCBSVN
	start := 0
	if svn[1] > 0 {
		start = 2
	}
	var sgxLevel *collateral.TCBLevel
	for i := range ti.TCBLevels {
		l := &ti.TCBLevels[i]
		if !sgxMatch(l, x) {
			continue
		}
		if sgxLevel == nil {
			sgxLevel = l
		}
		if len(l.TCB.TDXComponents) != 16 {
			continue
		}
		ok := true
		for j := start; j < 16; j++ {
			if int(svn[j]) < l.TCB.TDXComponents[j].SVN {
				ok = false
				break
			}
		}
		if ok {
			level = l
			break
		}
	}
	if sgxLevel == nil {
		return ev, fail(FailTCBNotSupported, "no SGX TCB level matches the PCK certificate (component SVNs %v, PCESVN %d)", x.CompSVN, x.PCESVN)
	}
	ev.sgxLevel = sgxLevel.TCBStatus
	if level == nil {
		return ev, fail(FailTCBNotSupported, "no TDX TCB level matches TEE_TCB_SVN %s", hx(svn[:]))
	}

	// TDX module.
	version, moduleSVN := svn[1], svn[0]
	maskEq := func(attr, mask, want []byte) bool {
		if len(mask) != 8 || len(want) != 8 {
			return false
		}
		for i := range 8 {
			if attr[i]&mask[i] != want[i] {
				return false
			}
		}
		return true
	}
	if version == 0 {
		m := ti.TDXModule
		if m == nil {
			return ev, fail(FailTDXModuleMismatch, "TCB info has no tdxModule for TDX module version 0")
		}
		if !bytes.Equal(m.MRSigner, td.MRSignerSeam[:]) {
			return ev, fail(FailTDXModuleMismatch, "MRSIGNERSEAM %s does not match tdxModule.mrsigner %s", hx(td.MRSignerSeam[:]), hx(m.MRSigner))
		}
		if !maskEq(td.SeamAttributes[:], m.AttributesMask, m.Attributes) {
			return ev, fail(FailTDXModuleMismatch, "SEAMATTRIBUTES %s masked with %s does not equal %s", hx(td.SeamAttributes[:]), hx(m.AttributesMask), hx(m.Attributes))
		}
		ev.module = StatusUpToDate
	} else {
		id := fmt.Sprintf("TDX_%02X", version)
		var mi *collateral.TDXModuleIdentity
		for i := range ti.TDXModuleIdentities {
			if strings.EqualFold(ti.TDXModuleIdentities[i].ID, id) {
				mi = &ti.TDXModuleIdentities[i]
				break
			}
		}
		if mi == nil {
			return ev, fail(FailTDXModuleMismatch, "TCB info has no TDX module identity %s", id)
		}
		if !bytes.Equal(mi.MRSigner, td.MRSignerSeam[:]) {
			return ev, fail(FailTDXModuleMismatch, "MRSIGNERSEAM %s does not match %s mrsigner %s", hx(td.MRSignerSeam[:]), id, hx(mi.MRSigner))
		}
		if !maskEq(td.SeamAttributes[:], mi.AttributesMask, mi.Attributes) {
			return ev, fail(FailTDXModuleMismatch, "SEAMATTRIBUTES %s masked with %s does not equal %s attributes %s", hx(td.SeamAttributes[:]), hx(mi.AttributesMask), id, hx(mi.Attributes))
		}
		var ml *collateral.ISVLevel
		for i := range mi.TCBLevels {
			if mi.TCBLevels[i].TCB.ISVSVN <= int(moduleSVN) {
				ml = &mi.TCBLevels[i]
				break
			}
		}
		if ml == nil {
			return ev, fail(FailTCBNotSupported, "no %s TCB level for TDX module SVN %d", id, moduleSVN)
		}
		ev.module, ev.moduleAdvisories = ml.TCBStatus, nonNil(ml.AdvisoryIDs)
	}
	ev.platform = converge(ev.module, level.TCBStatus)
	ev.platformAdvisories, ev.matchedDate = nonNil(level.AdvisoryIDs), level.TCBDate
	ev.final = converge(ev.qe, ev.platform)
	return ev, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
