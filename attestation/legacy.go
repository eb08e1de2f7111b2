package attestation

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"

	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/internal/limit"
	"github.com/ppml-project/ppml/quote/policy"
	"github.com/ppml-project/ppml/quote/verify"
)

// Intel QVL result codes (sgx_ql_qv_result_t), dcap-quote-verification.md §7.5.
const (
	QVLOK                          = 0x0000
	QVLConfigNeeded                = 0xA001
	QVLOutOfDate                   = 0xA002
	QVLOutOfDateConfigNeeded       = 0xA003
	QVLInvalidSignature            = 0xA004
	QVLRevoked                     = 0xA005
	QVLUnspecified                 = 0xA006
	QVLSWHardeningNeeded           = 0xA007
	QVLConfigAndSWHardeningNeeded  = 0xA008
	QVLTDRelaunchAdvised           = 0xA009
	QVLTDRelaunchAdvisedConfigNeed = 0xA00A
)

var statusCode = map[string]int{
	verify.StatusUpToDate:                          QVLOK,
	verify.StatusConfigurationNeeded:               QVLConfigNeeded,
	verify.StatusOutOfDate:                         QVLOutOfDate,
	verify.StatusOutOfDateConfigurationNeeded:      QVLOutOfDateConfigNeeded,
	verify.StatusSWHardeningNeeded:                 QVLSWHardeningNeeded,
	verify.StatusConfigurationAndSWHardeningNeeded: QVLConfigAndSWHardeningNeeded,
	verify.StatusRevoked:                           QVLRevoked,
	"TDRelaunchAdvised":                            QVLTDRelaunchAdvised,
	"TDRelaunchAdvisedConfigurationNeeded":         QVLTDRelaunchAdvisedConfigNeed,
}

// Verifier failures reported as INVALID_SIGNATURE (signature, chain or
// binding); revocation as REVOKED; everything else UNSPECIFIED.
var signatureFailures = map[string]bool{
	verify.FailPCKChain: true, verify.FailPCKCertTime: true, verify.FailQEReportSignature: true,
	verify.FailQEReportData: true, verify.FailQuoteSignature: true, verify.FailPCKCRL: true,
	verify.FailTCBInfoChain: true, verify.FailTCBInfoCertTime: true, verify.FailTCBInfoSignature: true,
	verify.FailQEIdentityChain: true, verify.FailQEIdentitySignature: true,
}

// BigDLResult maps a QVL code to BigDL AS's result: 0 pass, 1 pass with
// an out-of-date warning, -1 fail.
func BigDLResult(qvl int) int {
	switch qvl {
	case QVLOK:
		return 0
	case QVLConfigNeeded, QVLOutOfDate, QVLOutOfDateConfigNeeded, QVLSWHardeningNeeded, QVLConfigAndSWHardeningNeeded:
		return 1
	}
	return -1
}

// LegacyVerdict is the answer of the BigDL AS and eHSM quote protocols.
type LegacyVerdict struct {
	QVL     int    // sgx_ql_qv_result_t
	Message string // why, when QVL is not OK; "" otherwise
	Reason  string // stable reason code ("" when passing)
	Result  *verify.Result
	// Debug is set when the quote is of a debug enclave or TD; adapters
	// say debug: true in their answer (accepted only with
	// AllowDebugEnclaves).
	Debug bool
	// Err is a retryable refusal to judge the quote now (Verdict.Err):
	// adapters answer it as an error (503/429 with Retry-After).
	Err error
}

// BigDL returns the BigDL AS result (0, 1 or -1).
func (v *LegacyVerdict) BigDL() int { return BigDLResult(v.QVL) }

// legacyView keeps the measurement, debug, CRL, collateral-expiry and
// report-data rules of a policy; the TCB status travels as the QVL code, as
// upstream does, so it is not judged here.
func (s *Service) legacyView(p *policy.Policy) *policy.Policy {
	v := policy.Policy{}
	if p != nil {
		v = *p
	}
	v.AcceptedTCBStatuses = []string{verify.StatusUpToDate, verify.StatusConfigurationNeeded, verify.StatusOutOfDate,
		verify.StatusOutOfDateConfigurationNeeded, verify.StatusSWHardeningNeeded, verify.StatusConfigurationAndSWHardeningNeeded,
		verify.StatusRevoked}
	v.AcceptedAdvisoryIDs = nil
	v.AllowSimulated = s.cfg.AllowSimulation
	v.AllowDebug = v.AllowDebug || s.cfg.AllowDebugEnclaves
	return &v
}

// VerifyLegacy verifies a quote for the BigDL AS and eHSM protocols, with an
// optional stored policy (sp nil: the quote alone, under the server's
// rules: no debug enclaves, CRLs required, collateral not expired). With a
// non-nil bindNonce the report data must also start with SHA-256(bindNonce)
// (eHSM's opt-in nonce binding). The outcome is audited under api.
func (s *Service) VerifyLegacy(ctx context.Context, api, appID, remote string, raw []byte, sp *StoredPolicy, bindNonce []byte) *LegacyVerdict {
	v := s.VerifyQuote(limit.WithCaller(ctx, appID), raw)
	lv := &LegacyVerdict{Result: v.Result, Err: v.Err}
	var p *policy.Policy
	policyID := ""
	if sp != nil {
		p, policyID = sp.Policy, sp.ID
	}
	switch {
	case v.Reason == "":
		lv.QVL = QVLUnspecified
		if st := v.TCBStatus(); st != "" {
			if c, ok := statusCode[st]; ok {
				lv.QVL = c
			}
		}
		if lv.QVL == QVLRevoked {
			lv.Reason, lv.Message = "revoked", "the platform TCB is revoked"
		}
		if dec := s.legacyView(p).Evaluate(v.Result); !dec.Accepted {
			lv.QVL, lv.Reason = QVLUnspecified, ReasonPolicy
			lv.Message = "quote verified but refused: " + strings.Join(dec.Reasons, "; ")
			if v.Result.Debug && !s.cfg.AllowDebugEnclaves {
				lv.Message += " (these routes accept debug enclaves only when the operator starts ppml serve --allow-debug-enclaves, for development)"
			}
		} else if bindNonce != nil && !bindsNonce(v.Result.ReportData, bindNonce) {
			lv.QVL, lv.Reason = QVLUnspecified, ReasonReportDataMismatch
			lv.Message = "quote verified but refused: report_data does not start with SHA-256(nonce), which this server requires (--ehsm-bind-nonce)"
		}
	default:
		lv.QVL, lv.Reason, lv.Message = QVLUnspecified, v.Reason, v.Message
		if v.Result != nil && v.Result.Failure != "" {
			switch {
			case v.Result.Failure == verify.FailPCKRevoked:
				lv.QVL = QVLRevoked
			case signatureFailures[v.Result.Failure]:
				lv.QVL = QVLInvalidSignature
			}
		}
	}
	result := ""
	if BigDLResult(lv.QVL) < 0 {
		result = lv.Reason
		if result == "" {
			result = "refused"
		}
	}
	lv.Debug = v.Result != nil && v.Result.Debug
	if lv.Debug && result == "" {
		s.log.Warn("DEBUG ENCLAVE accepted (--allow-debug-enclaves): its memory is readable by the host; never in production", "api", api, "app_id", appID, "mr_enclave", v.Result.MREnclave, "mr_td", v.Result.MRTD)
	}
	if err := s.record(api, appID, policyID, remote, v, result, lv.Message); err != nil {
		// Fail closed: a verification nobody can audit does not pass.
		lv.QVL, lv.Reason, lv.Message = QVLUnspecified, fault.CodeOf(err), err.Error()
	}
	return lv
}

// bindsNonce reports whether hex report data starts with SHA-256(nonce).
func bindsNonce(reportDataHex string, nonce []byte) bool {
	rd, err := hex.DecodeString(reportDataHex)
	want := sha256.Sum256(nonce)
	return err == nil && len(rd) >= 32 && subtle.ConstantTimeCompare(rd[:32], want[:]) == 1
}
