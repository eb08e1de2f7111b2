// Package ehsm serves Intel eHSM-KMS's REST protocol (ehsm-protocol.md) at
// /ehsm over the kms core, so eHSM and BigDL clients work unchanged.
// Deliberate differences from upstream: Enroll needs the admin credential
// (unless the server runs with --open-enrollment), the signature is checked
// in constant time before the replay record is written, replay records live
// in the shared store, and failures carry a precise reason.
package ehsm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ppml-project/ppml/api/httputil"
	"github.com/ppml-project/ppml/attestation"
	"github.com/ppml-project/ppml/enclave"
	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/kms"
	"github.com/ppml-project/ppml/kms/secrets"
	"github.com/ppml-project/ppml/metrics"
	"github.com/ppml-project/ppml/wire/ehsmsig"
)

// Window and retention of the timestamp replay rule (ehsm-protocol.md §4).
const (
	TimestampWindow = 10 * time.Minute
	ReplayRetention = 20 * time.Minute
)

// Version is reported by GetVersion.
var Version = "ppml-dev"

// ReplayStore remembers signed requests (app, nonce, timestamp) so a
// replayed envelope is refused on every replica (store.Store does this).
type ReplayStore interface {
	// RecordRequest also returns the key generation read while committing
	// the record (store.Store), which lets the kms core serve key rows
	// from memory for this request (kms.WithKeyGeneration).
	RecordRequest(ctx context.Context, app, nonce, timestamp string, now, notBefore time.Time) (fresh bool, keyGeneration int64, err error)
}

// Handler serves /ehsm and /ehsm/.
type Handler struct {
	svc          *kms.Service
	replay       ReplayStore
	table        map[string]actionFunc  // the key actions, built once
	quotes       map[string]quoteAction // the quote actions, built once
	secretTable  map[string]secretAction
	secrets      *secrets.Service
	attestation  *attestation.Service
	bindNonce    bool
	self         enclave.Quoter
	selfKeyHash  [32]byte
	metrics      *metrics.Metrics
	mirrorStatus bool
}

// Options configures a Handler.
type Options struct {
	// Replay keeps the replay records (required).
	Replay  ReplayStore
	Metrics *metrics.Metrics
	// Attestation serves the quote actions (ehsm-protocol.md §8); nil
	// answers them as unknown.
	Attestation *attestation.Service
	// BindNonce requires VerifyQuote's report_data to start with
	// SHA-256(base64-decoded nonce) (ehsm-protocol.md §8.1, opt-in: BigDL
	// always sends the nonce "test" and a constant report data).
	BindNonce bool
	// Self quotes this server (GenerateQuote); nil: not in an enclave.
	Self enclave.Quoter
	// Secrets serves the secret manager actions (ehsm-protocol.md §14);
	// nil answers them as unknown.
	Secrets *secrets.Service
	// SelfTLSKeyHash is SHA-256 of the serving certificate's public key,
	// bound in the second half of the self-quote's report data (RA-TLS);
	// zero leaves it zero.
	SelfTLSKeyHash [32]byte
	// MirrorStatus sets the HTTP status to the body code (upstream always
	// answers HTTP 200; that stays the default).
	MirrorStatus bool
}

// New returns the eHSM protocol handler.
func New(svc *kms.Service, o Options) *Handler {
	if o.Replay == nil {
		panic("ehsm.New: Options.Replay is required")
	}
	h := &Handler{svc: svc, replay: o.Replay, metrics: o.Metrics, attestation: o.Attestation, bindNonce: o.BindNonce,
		self: o.Self, selfKeyHash: o.SelfTLSKeyHash, mirrorStatus: o.MirrorStatus, secrets: o.Secrets}
	h.table = h.actions()
	h.quotes = h.quoteActions()
	h.secretTable = h.secretActions()
	return h
}

type response struct {
	Code    int            `json:"code"`
	Message string         `json:"message"`
	Result  map[string]any `json:"result"`
}

// apiError is a protocol-level failure (before the kms core is reached).
type apiError struct {
	code int
	msg  string
	tag  string
}

func (e *apiError) Error() string { return e.msg }

func bad(tag, format string, args ...any) *apiError {
	return &apiError{code: 400, msg: fmt.Sprintf(format, args...), tag: tag}
}

// refuse audits a refused authentication and answers e (or the audit
// refusal when the record cannot be written).
func (h *Handler) refuse(ctx context.Context, c kms.Caller, action string, e *apiError) error {
	aerr := h.svc.AuthFailed(ctx, c, action, &fault.Error{Kind: fault.Unauthenticated, Code: e.tag, Msg: e.msg})
	if fault.CodeOf(aerr) == "audit_unavailable" {
		return aerr
	}
	return e
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	action := r.URL.Query().Get("Action")
	fn, known := h.route(action)
	result, msg, err := h.serve(r, action, fn, known)
	resp := response{Code: 200, Message: msg, Result: result}
	tag := "ok"
	if err != nil {
		resp.Result = map[string]any{}
		resp.Message = err.Error()
		var ae *apiError
		if errors.As(err, &ae) {
			resp.Code, tag = ae.code, ae.tag
		} else {
			resp.Code, tag = codeOf(err), fault.CodeOf(err)
		}
	}
	if resp.Result == nil {
		resp.Result = map[string]any{}
	}
	if !known {
		action = "unknown"
	}
	h.metrics.Observe("ehsm", action, tag, time.Since(start))
	status := http.StatusOK
	if h.mirrorStatus && resp.Code != 200 {
		status = resp.Code
	}
	switch fault.KindOf(err) { // retryable: tell proxies and clients, whatever the mode
	case fault.Unavailable:
		status = http.StatusServiceUnavailable
	case fault.TooMany:
		status = http.StatusTooManyRequests
	}
	httputil.SetRetryAfter(w.Header(), err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	httputil.EncodeJSON(w, resp)
}

func codeOf(err error) int {
	switch fault.KindOf(err) {
	case fault.Internal, fault.Sealed, fault.Unavailable:
		return 500
	case fault.TooMany:
		return 429
	}
	return 400
}

type actionFunc func(ctx context.Context, c kms.Caller, p payload) (map[string]any, error)

func (h *Handler) route(action string) (actionFunc, bool) {
	switch action {
	case "GetVersion", "Enroll":
		return nil, true
	}
	if f, ok := h.table[action]; ok {
		return f, true
	}
	if _, ok := h.secretTable[action]; ok {
		return nil, true
	}
	_, ok := h.quotes[action]
	return nil, ok
}

func (h *Handler) serve(r *http.Request, action string, fn actionFunc, known bool) (map[string]any, string, error) {
	ctx := r.Context()
	if !known {
		if action == "DeleteAllKey" || action == "DeleteALLKey" {
			return nil, "", bad("unsupported_action", "DeleteAllKey is not supported: deleting every key at once loses data; schedule deletion key by key with DeleteKey")
		}
		return nil, "", &apiError{code: 404, msg: fmt.Sprintf("API Not Found: unknown Action %q", action), tag: "unknown_action"}
	}
	switch action {
	case "GetVersion":
		return map[string]any{"version": Version, "git_sha": Version}, "successful", nil
	case "Enroll":
		if err := h.svc.CheckEnrollment(r.Context(), httputil.BearerToken(r)); err != nil {
			return nil, "", err
		}
		appID, apiKey, err := h.svc.Enroll(ctx, kms.Caller{API: "ehsm", Remote: r.RemoteAddr})
		if err != nil {
			return nil, "", err
		}
		return map[string]any{"appid": appID, "apikey": apiKey}, "successful", nil
	}
	if r.Method != http.MethodPost {
		return nil, "", bad("method", "Action %s needs POST with a JSON body (got %s)", action, r.Method)
	}
	body, err := httputil.ReadBody(r)
	if err != nil {
		return nil, "", bad("body_too_large", "Invalid request: the body is larger than 1 MiB or could not be read")
	}
	env, err := parseEnvelope(body, action, h.svc.Now())
	if err != nil {
		return nil, "", err
	}
	var fields []field
	if fn != nil {
		fields = actionFields[action]
		if err := validate(env.payload, fields); err != nil {
			return nil, "", err
		}
	}
	apiKey, err := h.svc.AppKey(ctx, env.appID)
	if err != nil {
		return nil, "", err
	}
	canon := ehsmsig.Canonical(ehsmsig.Envelope(env.appID, env.nonce, env.timestamp, env.rawPayload))
	refused := kms.Caller{ID: env.appID, API: "ehsm", Remote: r.RemoteAddr}
	if !ehsmsig.Verify(apiKey, canon, env.sign) {
		return nil, "", h.refuse(ctx, refused, action, bad("bad_signature", "sign error: the signature does not match; sign HMAC-SHA256(apikey, canonical string) as the eHSM protocol defines"))
	}
	// The replay record is the hash of the whole signed string (values may
	// hold '&' and '=', e.g. base64 padding or secret text): every request
	// a captured signature is valid for, however its JSON is arranged,
	// counts as that one request.
	now := h.svc.Now()
	signed := sha256.Sum256([]byte(canon))
	fresh, keyGen, err := h.replay.RecordRequest(ctx, env.appID, "sha256:"+hex.EncodeToString(signed[:]), env.timestamp, now, now.Add(-ReplayRetention))
	if err != nil {
		return nil, "", kms.StoreUnavailable("recording the request timestamp")
	}
	if !fresh {
		return nil, "", h.refuse(ctx, refused, action, bad("replay", "Timestamp can't be repeated in 20 minutes"))
	}
	ctx = kms.WithKeyGeneration(ctx, keyGen)
	caller := kms.Caller{ID: env.appID, API: "ehsm", Remote: r.RemoteAddr}
	if sa, ok := h.secretTable[action]; ok {
		if env.payload == nil {
			env.payload = payload{}
		}
		if err := validate(env.payload, secretFields[action]); err != nil {
			return nil, "", err
		}
		res, msg, err := sa(ctx, caller, env.payload)
		return res, msg, err
	}
	if fn == nil {
		return h.quotes[action](ctx, env.appID, string(apiKey), env.payload)
	}
	res, err := fn(ctx, caller, env.payload)
	return res, "successful", err
}

type envelope struct {
	appID, nonce, timestamp, sign string
	payload                       payload
	rawPayload                    any
}

func parseEnvelope(body []byte, action string, now time.Time) (*envelope, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, bad("invalid_json", "Invalid JSON: the body must be a JSON object {appid, timestamp, payload, sign}")
	}
	if dec.More() {
		return nil, bad("invalid_json", "Invalid JSON: trailing data after the JSON object")
	}
	needPayload := action != "ListKey"
	for _, k := range []string{"appid", "timestamp", "sign"} {
		if v, ok := obj[k]; !ok || v == nil || v == "" {
			return nil, bad("missing_parameter", "Missing required parameters: %s is missing or empty", k)
		}
	}
	if _, ok := obj["payload"]; needPayload && (!ok || obj["payload"] == nil) {
		return nil, bad("missing_parameter", "Missing required parameters: payload is missing")
	}
	e := &envelope{}
	var ok bool
	for _, f := range [...]struct {
		name string
		dst  *string
	}{{"appid", &e.appID}, {"timestamp", &e.timestamp}, {"sign", &e.sign}} {
		if *f.dst, ok = obj[f.name].(string); !ok {
			return nil, bad("param_type", "param type error: %s must be a JSON string", f.name)
		}
	}
	if n, present := obj["nonce"]; present && n != nil {
		if e.nonce, ok = n.(string); !ok {
			return nil, bad("param_type", "param type error: nonce must be a JSON string")
		}
	}
	if p, present := obj["payload"]; present && p != nil {
		m, ok := p.(map[string]any)
		if !ok {
			return nil, bad("param_type", "param type error: payload must be a JSON object")
		}
		e.payload, e.rawPayload = m, m
	}
	if len(e.nonce) > 64 {
		return nil, bad("nonce_length", "Nonce length error: the nonce is longer than 64 characters")
	}
	// The signed string is key=value pairs joined with '&', unescaped: a
	// nonce or a field name with '&' or '=' could pose as other fields.
	if strings.ContainsAny(e.nonce, "&=") {
		return nil, bad("nonce_invalid", "Parameter invalid, The nonce may not contain '&' or '=' (they would make the signed string ambiguous)")
	}
	if k := ambiguousKey(e.rawPayload); k != "" {
		return nil, bad("param_name", "Parameter invalid, The payload field name %q contains '&' or '=', which would make the signed string ambiguous", k)
	}
	if len(e.timestamp) != 13 {
		return nil, bad("timestamp_length", "Timestamp length error: timestamp must be 13 digits of Unix time in milliseconds")
	}
	ms, err := strconv.ParseInt(e.timestamp, 10, 64)
	if err != nil || strings.TrimLeft(e.timestamp, "0123456789") != "" {
		return nil, bad("timestamp_format", "Timestamp error: timestamp must be decimal digits (Unix time in milliseconds)")
	}
	if d := now.UnixMilli() - ms; d >= TimestampWindow.Milliseconds() || -d >= TimestampWindow.Milliseconds() {
		return nil, bad("timestamp_window", "Timestamp error: the timestamp is more than 10 minutes away from the server clock; check the client's clock")
	}
	return e, nil
}

// ambiguousKey returns the first object key, at any depth, containing '&'
// or '='.
func ambiguousKey(v any) string {
	switch o := v.(type) {
	case map[string]any:
		for k, x := range o {
			if strings.ContainsAny(k, "&=") {
				return k
			}
			if bad := ambiguousKey(x); bad != "" {
				return bad
			}
		}
	case []any:
		for _, x := range o {
			if bad := ambiguousKey(x); bad != "" {
				return bad
			}
		}
	}
	return ""
}

// payload is the decoded payload object.
type payload map[string]any

func (p payload) str(k string) string {
	s, _ := p[k].(string)
	return s
}

// list splits an optional comma-separated field (our extension fields).
func (p payload) list(k string) []string {
	var out []string
	for _, v := range strings.Split(p.str(k), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (p payload) bytes(k string) []byte {
	b, _ := base64.StdEncoding.DecodeString(p.str(k))
	return b
}

func (p payload) int(k string) int {
	n, _ := p[k].(json.Number)
	v, _ := n.Int64()
	return int(v)
}

type fieldType int

const (
	tString fieldType = iota
	tKeyID
	tBase64
	tInt
	tHex32    // 64 hex characters
	tPolicyID // a lower-case UUID
)

type field struct {
	name     string
	typ      fieldType
	required bool
	max      int // characters (strings) or value (ints)
	min      int
}

// checkHex32 accepts what eHSM's UploadQuotePolicy accepts, 64 characters,
// and of those only hex (a measurement is 32 bytes; eHSM stores any text,
// which could never match a quote), saying which character is wrong.
func checkHex32(name, s string) error {
	if n := utf8.RuneCountInString(s); n != 64 {
		return bad("invalid_parameter", "Parameter invalid, The %s length error: %d characters, want exactly 64 (the 32-byte measurement in hex, as gramine-sgx-sign or sgx_sign print it).", name, n)
	}
	for i, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return bad("invalid_parameter", "Parameter invalid, The %s is not hex: %q at position %d is not 0-9 or a-f (the 32-byte measurement in hex, as gramine-sgx-sign or sgx_sign print it).", name, r, i+1)
		}
	}
	return nil
}

func validate(p payload, fields []field) error {
	for _, f := range fields {
		v, present := p[f.name]
		if !present || v == nil || v == "" {
			if f.required {
				return bad("missing_parameter", "Missing required parameters, The %s cannot be empty.", f.name)
			}
			continue
		}
		switch f.typ {
		case tInt:
			n, ok := v.(json.Number)
			i, err := n.Int64()
			if !ok || err != nil {
				return bad("invalid_parameter", "Parameter invalid, The %s must be of integer type.", f.name)
			}
			if int(i) < f.min || int(i) > f.max {
				return bad("invalid_parameter", "Parameter invalid, The %s must be between %d and %d.", f.name, f.min, f.max)
			}
			continue
		}
		s, ok := v.(string)
		if !ok {
			return bad("invalid_parameter", "Parameter invalid, The %s must be a string.", f.name)
		}
		if f.max > 0 && len(s) > f.max {
			return bad("invalid_parameter", "Parameter invalid, The %s is longer than %d characters.", f.name, f.max)
		}
		switch f.typ {
		case tKeyID:
			if !httputil.IsLowerUUID(s) {
				return bad("invalid_parameter", "Parameter invalid, The %s must be a lower-case UUID such as 0b9f5c3e-8a1d-4f6b-b2c7-5d4e3f2a1b0c.", f.name)
			}
		case tHex32:
			if err := checkHex32(f.name, s); err != nil {
				return err
			}
		case tPolicyID:
			if !httputil.IsLowerUUID(s) {
				return bad("invalid_parameter", "Parameter invalid, The %s must be a lower-case UUID.", f.name)
			}
		case tBase64:
			if !httputil.IsStdBase64(s) {
				return bad("invalid_parameter", "Parameter invalid, The %s must be standard base64 with padding.", f.name)
			}
		}
	}
	return nil
}
