// Package bigdlas serves BigDL's Remote Attestation Service API
// (bigdl-attestation-protocol.md §2) over the attestation core: GET /enroll,
// POST /registerPolicy with the six policy types, POST /verifyQuote
// answering {"result": 0|1|-1}. Differences from upstream, all from the
// reference: enrollment needs the admin credential (unless
// --open-enrollment), API keys are checked in constant time, every error is
// JSON with "result": -1 and upstream's message, measurements are compared
// as fixed-length bytes (hex of either case, shorter values left-padded),
// SGXMRSignerPolicy's isvProdID is read in upstream's rendering (ISVProdIDRule),
// and quotes are verified with the project's verifier and trusted time.
package bigdlas

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ppml-project/ppml/api/httputil"
	"github.com/ppml-project/ppml/attestation"
	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/kms"
	"github.com/ppml-project/ppml/metrics"
	"github.com/ppml-project/ppml/quote/policy"
)

// Banner is the answer of GET / on the BigDL AS listener; BigDL's
// check-service.sh greps for "Welcome to BigDL Remote Attestation Service".
const Banner = "Welcome to BigDL Remote Attestation Service (ppml)\n"

// Upstream messages.
const (
	MsgInvalidCredentials = "Invalid app_id and api_key."
	MsgUnsupportedPolicy  = "Unsupported policy type."
)

// Routes are the paths this handler owns.
var Routes = []string{"/enroll", "/registerPolicy", "/verifyQuote"}

// Handler serves the BigDL AS routes.
type Handler struct {
	svc     *kms.Service
	as      *attestation.Service
	metrics *metrics.Metrics
}

// New returns the handler.
func New(svc *kms.Service, as *attestation.Service, m *metrics.Metrics) *Handler {
	return &Handler{svc: svc, as: as, metrics: m}
}

// BannerHandler answers GET / with Banner and everything else with next.
func BannerHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if httputil.CollapseSlashes(r.URL.Path) == "/" && r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, Banner)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// failure is an error answer: HTTP status, upstream message, our detail.
type failure struct {
	status int
	msg    string
	reason string
	detail string
}

func (f *failure) Error() string { return f.msg }

func fail(status int, msg, reason, detail string) *failure {
	return &failure{status: status, msg: msg, reason: reason, detail: detail}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	path := httputil.CollapseSlashes(r.URL.Path)
	var (
		status = http.StatusOK
		out    any
		err    error
		action string
	)
	switch path {
	case "/enroll":
		action = "Enroll"
		if r.Method != http.MethodGet {
			err = fail(http.StatusMethodNotAllowed, "Use GET /enroll.", "method", "")
		} else {
			out, err = h.enroll(r)
		}
	case "/registerPolicy":
		action = "RegisterPolicy"
		if r.Method != http.MethodPost {
			err = fail(http.StatusMethodNotAllowed, "Use POST /registerPolicy with a JSON body.", "method", "")
		} else {
			out, err = h.registerPolicy(r)
		}
	case "/verifyQuote":
		action = "VerifyQuote"
		if r.Method != http.MethodPost {
			err = fail(http.StatusMethodNotAllowed, "Use POST /verifyQuote with a JSON body.", "method", "")
		} else {
			var res map[string]any
			res, status, err = h.verifyQuote(r)
			out = res
		}
	default:
		action = "unknown"
		err = fail(http.StatusNotFound, "The requested resource could not be found.", "unknown_route", "")
	}
	tag := "ok"
	if err != nil {
		var f *failure
		if !errors.As(err, &f) {
			f = fromKMS(err)
		}
		tag = f.reason
		status = f.status
		body := map[string]any{"result": -1, "message": f.msg}
		if f.detail != "" {
			body["reason"] = f.detail
		}
		out = body
	} else if m, ok := out.(map[string]any); ok {
		if res, _ := m["result"].(int); res < 0 {
			tag = "refused"
		}
	}
	h.metrics.Observe("bigdl-as", action, tag, time.Since(start))
	httputil.SetRetryAfter(w.Header(), err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	httputil.EncodeJSON(w, out)
}

func fromKMS(err error) *failure {
	code := fault.CodeOf(err)
	switch fault.KindOf(err) {
	case fault.Unauthenticated:
		return fail(http.StatusUnauthorized, err.Error(), code, "")
	case fault.Sealed, fault.Unavailable:
		return fail(http.StatusServiceUnavailable, err.Error(), code, "")
	case fault.TooMany:
		return fail(http.StatusTooManyRequests, err.Error(), code, "")
	case fault.Internal:
		return fail(http.StatusInternalServerError, "Server internal error, please contact the administrator.", code, "")
	}
	return fail(http.StatusBadRequest, err.Error(), code, "")
}

func (h *Handler) enroll(r *http.Request) (any, error) {
	if err := h.svc.CheckEnrollment(r.Context(), httputil.BearerToken(r)); err != nil {
		return nil, err
	}
	appID, apiKey, err := h.svc.Enroll(r.Context(), kms.Caller{API: "bigdl-as", Remote: r.RemoteAddr})
	if err != nil {
		return nil, err
	}
	return map[string]any{"appID": appID, "apiKey": apiKey}, nil
}

// decode reads the JSON object of a request; fields keep their JSON types.
func decode(r *http.Request) (map[string]json.RawMessage, error) {
	body, err := httputil.ReadBody(r)
	if err != nil {
		return nil, fail(http.StatusBadRequest, "Invalid request body.", "bad_body", "the body is larger than 1 MiB or could not be read")
	}
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return nil, fail(http.StatusBadRequest, "Invalid request body.", "bad_json", "the body must be a JSON object")
	}
	// Upstream's Jackson mapper matches names case-insensitively
	// (ACCEPT_CASE_INSENSITIVE_PROPERTIES) and ignores unknown ones.
	m := make(map[string]json.RawMessage, len(raw))
	for k, v := range raw {
		name := k
		for _, f := range requestFields {
			if strings.EqualFold(k, f) {
				name = f
				break
			}
		}
		if _, dup := m[name]; dup {
			return nil, fail(http.StatusBadRequest, "Invalid request body.", "bad_json", fmt.Sprintf("two members name %s (names are matched case-insensitively, as upstream does); send one", name))
		}
		m[name] = v
	}
	return m, nil
}

// requestFields are the member names of every BigDL AS request.
var requestFields = []string{"appID", "apiKey", "policyType", "policyID", "quote", "mrEnclave", "mrSigner", "isvProdID", "reportData", "mrTD", "rtmr"}

// str returns a string field ("" when absent or null).
func str(m map[string]json.RawMessage, k string) (string, error) {
	raw, ok := m[k]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fail(http.StatusBadRequest, fmt.Sprintf("Invalid %s.", k), "bad_field", k+" must be a JSON string")
	}
	return s, nil
}

func (h *Handler) auth(r *http.Request, m map[string]json.RawMessage) (string, error) {
	appID, err := str(m, "appID")
	if err != nil {
		return "", err
	}
	apiKey, err := str(m, "apiKey")
	if err != nil {
		return "", err
	}
	if appID == "" || apiKey == "" {
		return "", fail(http.StatusBadRequest, MsgInvalidCredentials, "bad_credentials", "appID and apiKey are required")
	}
	if err := h.svc.AuthenticateApp(r.Context(), appID, apiKey); err != nil {
		if fault.KindOf(err) == fault.Unauthenticated {
			return "", fail(http.StatusBadRequest, MsgInvalidCredentials, "bad_credentials", "")
		}
		return "", err
	}
	return appID, nil
}

// measurement decodes hex of either case; a shorter value is left-padded
// with zeros (upstream's rendering dropped leading zeros), a longer one
// refused.
func measurement(field, s string, n int) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fail(http.StatusBadRequest, fmt.Sprintf("Missing %s.", field), "missing_field", field+" is required for this policy type")
	}
	if len(s)%2 == 1 {
		s = "0" + s
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return "", fail(http.StatusBadRequest, fmt.Sprintf("Invalid %s.", field), "bad_field", field+" must be hex")
	}
	if len(b) > n {
		return "", fail(http.StatusBadRequest, fmt.Sprintf("Invalid %s.", field), "bad_field", fmt.Sprintf("%s is %d bytes, at most %d", field, len(b), n))
	}
	out := make([]byte, n)
	copy(out[n-len(b):], b)
	return hex.EncodeToString(out), nil
}

// ISVProdIDRule says how registerPolicy reads isvProdID; the answer repeats
// it with the product ID it found.
const ISVProdIDRule = "read as upstream BigDL renders a quote's ISVPRODID (AttestationUtil.getISVProdIDFromQuote): " +
	"the two little-endian bytes printed as one big-endian hex number, so \"100\" is product ID 1, \"1\" is 256, \"0\" is 0"

// isvProdID reads isvProdID as upstream compares it: upstream keeps the
// value as text (Jackson turns a JSON number into its digits) and compares
// it with the hex rendering of the quote's bytes 304..306 read as a
// big-endian integer. ISVPRODID is little-endian, so the rendering is the
// product ID with its bytes swapped. Hex digits of either case and leading
// zeros are accepted (upstream would never match those: a harmless
// widening).
func isvProdID(m map[string]json.RawMessage) (uint16, error) {
	raw, ok := m["isvProdID"]
	if !ok || string(raw) == "null" {
		return 0, fail(http.StatusBadRequest, "Missing isvProdID.", "missing_field", "isvProdID is required for SGXMRSignerPolicy")
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		s = string(raw) // a JSON number: its digits, as Jackson reads it into a String
	}
	s = strings.TrimSpace(s)
	v, err := strconv.ParseUint(s, 16, 16)
	if err != nil {
		return 0, fail(http.StatusBadRequest, "Invalid isvProdID.", "bad_field",
			fmt.Sprintf("isvProdID %q is not 1 to 4 hex digits; it is %s", trunc(s), ISVProdIDRule))
	}
	return uint16(v>>8 | v<<8), nil
}

func trunc(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	return s
}

// PolicyFromBigDL converts a registerPolicy request to an quote/policy.
func PolicyFromBigDL(m map[string]json.RawMessage) (*policy.Policy, string, error) {
	typ, err := str(m, "policyType")
	if err != nil {
		return nil, "", err
	}
	field := func(k string, n int) (string, error) {
		s, err := str(m, k)
		if err != nil {
			return "", err
		}
		return measurement(k, s, n)
	}
	p := &policy.Policy{}
	switch typ {
	case "SGXMREnclavePolicy":
		p.TEE = "sgx"
		v, err := field("mrEnclave", 32)
		if err != nil {
			return nil, "", err
		}
		p.MREnclave = []string{v}
	case "SGXMRSignerPolicy":
		p.TEE = "sgx"
		v, err := field("mrSigner", 32)
		if err != nil {
			return nil, "", err
		}
		id, err := isvProdID(m)
		if err != nil {
			return nil, "", err
		}
		p.MRSigner, p.ISVProdID = []string{v}, &id
	case "SGXReportDataPolicy", "TDXReportDataPolicy":
		p.TEE = "sgx"
		if typ == "TDXReportDataPolicy" {
			p.TEE = "tdx"
		}
		v, err := field("reportData", 64)
		if err != nil {
			return nil, "", err
		}
		p.ReportData = v
	case "TDXMRTDPolicy":
		p.TEE = "tdx"
		v, err := field("mrTD", 48)
		if err != nil {
			return nil, "", err
		}
		p.MRTD = []string{v}
	case "TDXLaunchTimePolicy":
		p.TEE = "tdx"
		v, err := field("mrTD", 48)
		if err != nil {
			return nil, "", err
		}
		rt, err := field("rtmr", 192)
		if err != nil {
			return nil, "", err
		}
		p.MRTD = []string{v}
		p.RTMR0, p.RTMR1, p.RTMR2, p.RTMR3 = []string{rt[0:96]}, []string{rt[96:192]}, []string{rt[192:288]}, []string{rt[288:384]}
	default:
		return nil, "", fail(http.StatusBadRequest, MsgUnsupportedPolicy, "unsupported_policy_type",
			"policyType must be one of SGXMREnclavePolicy, SGXMRSignerPolicy, SGXReportDataPolicy, TDXMRTDPolicy, TDXReportDataPolicy, TDXLaunchTimePolicy")
	}
	return p, typ, nil
}

func (h *Handler) registerPolicy(r *http.Request) (any, error) {
	m, err := decode(r)
	if err != nil {
		return nil, err
	}
	appID, err := h.auth(r, m)
	if err != nil {
		return nil, err
	}
	p, typ, err := PolicyFromBigDL(m)
	if err != nil {
		return nil, err
	}
	sp, err := h.as.CreatePolicy(r.Context(), appID, "bigdl:"+typ, p)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"policyID": sp.ID}
	if p.ISVProdID != nil {
		// The legacy client reads policyID only; say how isvProdID was read.
		out["isvProdID"] = map[string]any{"productID": *p.ISVProdID, "readAs": ISVProdIDRule}
	}
	return out, nil
}

func (h *Handler) verifyQuote(r *http.Request) (map[string]any, int, error) {
	m, err := decode(r)
	if err != nil {
		return nil, 0, err
	}
	appID, err := h.auth(r, m)
	if err != nil {
		return nil, 0, err
	}
	q, err := str(m, "quote")
	if err != nil {
		return nil, 0, err
	}
	if q == "" {
		return nil, 0, fail(http.StatusBadRequest, "Missing quote.", "missing_quote", "quote (standard base64 of the raw DCAP quote) is required")
	}
	raw, err := base64.StdEncoding.DecodeString(q)
	if err != nil {
		return nil, 0, fail(http.StatusBadRequest, "Invalid quote.", "bad_base64", "quote must be standard base64 with padding")
	}
	pid, err := str(m, "policyID")
	if err != nil {
		return nil, 0, err
	}
	var sp *attestation.StoredPolicy
	switch pid {
	case "":
	case "latest":
		sp, err = h.as.LatestPolicy(r.Context(), appID)
	default:
		sp, err = h.as.Policy(r.Context(), appID, pid)
	}
	if err != nil {
		if fault.KindOf(err) == fault.NotFound {
			return nil, 0, fail(http.StatusBadRequest, MsgUnsupportedPolicy, "policy_not_found", err.Error())
		}
		return nil, 0, err
	}
	v := h.as.VerifyLegacy(r.Context(), "bigdl-as", appID, r.RemoteAddr, raw, sp, nil)
	if v.Err != nil {
		return nil, 0, v.Err
	}
	res := v.BigDL()
	out := map[string]any{"result": res}
	status := http.StatusOK
	if res < 0 {
		status = http.StatusBadRequest
		out["message"] = v.Message
		out["reason"] = v.Reason
	}
	if v.Result != nil && v.Result.Simulated {
		out["simulated"] = true
	}
	if v.Debug {
		out["debug"] = true
	}
	return out, status, nil
}
