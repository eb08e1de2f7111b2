package attestation

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/ppml-project/ppml/audit"
	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/internal/limit"
	"github.com/ppml-project/ppml/kms"
	"github.com/ppml-project/ppml/quote/policy"
	"github.com/ppml-project/ppml/quote/verify"
	"github.com/ppml-project/ppml/store"
	"github.com/ppml-project/ppml/store/rowmac"
	"github.com/ppml-project/ppml/wire/token"
)

// Claims are the claims of an attestation token (see wire/token).
type Claims = token.Claims

// internal answers an unexpected error as the key service does (sealed,
// store_unavailable, internal).
func (s *Service) internal(op string, err error) error { return kms.InternalError(s.log, op, err) }

// --- policies ---

// StoredPolicy is a policy of an app.
type StoredPolicy struct {
	ID        string         `json:"policy_id"`
	Origin    string         `json:"origin"` // native, ehsm, bigdl:<policyType>
	CreatedAt time.Time      `json:"created_at"`
	Policy    *policy.Policy `json:"policy"`
}

// CreatePolicy validates and stores a policy for appID and returns its id.
func (s *Service) CreatePolicy(ctx context.Context, appID, origin string, p *policy.Policy) (*StoredPolicy, error) {
	if err := p.Validate(); err != nil {
		return nil, fault.Invalidf("invalid_policy", "%s", err.Error())
	}
	doc, err := json.Marshal(p)
	if err != nil {
		return nil, s.internal("CreatePolicy", err)
	}
	sp := &StoredPolicy{ID: uuid.NewString(), Origin: origin, CreatedAt: s.now().UTC().Truncate(time.Millisecond), Policy: p}
	row := store.AttestPolicy{ID: sp.ID, Owner: appID, Origin: origin, Document: doc, CreatedAt: sp.CreatedAt}
	if row.MAC, err = s.rows.Sum(ctx, policyRowDomain, policyRowFields(row)...); err != nil {
		return nil, s.internal("CreatePolicy", err)
	}
	err = s.st.CreatePolicy(ctx, row)
	ev := auditEvent(s, "CreatePolicy", appID, sp.ID, err)
	if aerr := s.cfg.Audit.Record(ev); aerr != nil && err == nil {
		return nil, audit.Refusal("CreatePolicy")
	}
	if err != nil {
		return nil, s.internal("CreatePolicy", err)
	}
	return sp, nil
}

// ParsePolicy parses a policy document (quote/policy JSON) as a client error.
func ParsePolicy(doc []byte) (*policy.Policy, error) {
	p, err := policy.Parse(doc)
	if err != nil {
		return nil, fault.Invalidf("invalid_policy", "%s", err.Error())
	}
	return p, nil
}

const policyRowDomain = "attest-policy"

// policyRowFields are what the row MAC of a policy covers: all of it.
func policyRowFields(p store.AttestPolicy) []string {
	return []string{p.ID, p.Owner, p.Origin, string(p.Document), strconv.FormatInt(p.CreatedAt.UnixMilli(), 10)}
}

func newPolicyRows(cfg Config) *rowmac.Keeper {
	return rowmac.New(cfg.Root, cfg.Store, "attest_policies", func(ctx context.Context, sum rowmac.SumFunc) error {
		n, err := cfg.Store.BackfillPolicyMACs(ctx, func(p store.AttestPolicy) ([]byte, error) {
			return sum(policyRowDomain, policyRowFields(p)...), nil
		})
		if err == nil && n > 0 {
			cfg.Logger.Warn("row integrity: authenticated attestation policies written before row MACs existed, as they are now (first start after the upgrade)", "rows", n)
		}
		return err
	})
}

func (s *Service) decodeStored(ctx context.Context, sp store.AttestPolicy) (*StoredPolicy, error) {
	if sp.MAC == nil {
		// Perhaps read just before the first-start backfill gave it one.
		if err := s.rows.Ready(ctx); err != nil {
			return nil, s.internal("loading a policy", err)
		}
		if fresh, err := s.st.GetPolicy(ctx, sp.Owner, sp.ID); err == nil && slices.Equal(policyRowFields(fresh), policyRowFields(sp)) {
			sp = fresh
		}
	}
	ok, err := s.rows.Valid(ctx, sp.MAC, policyRowDomain, policyRowFields(sp)...)
	if err != nil {
		return nil, s.internal("loading a policy", err)
	}
	if !ok {
		s.log.Error("attestation policy failed its integrity check: it was modified in the database", "policy_id", sp.ID)
		return nil, &fault.Error{Kind: fault.Internal, Code: "policy_integrity", Msg: fmt.Sprintf("Server exception. [policy_integrity] the stored attestation policy %s failed its integrity check; the administrator must restore it from backup", sp.ID)}
	}
	p, err := policy.Parse(sp.Document)
	if err != nil {
		return nil, s.internal("loading a policy", fmt.Errorf("policy %s: %w", sp.ID, err))
	}
	return &StoredPolicy{ID: sp.ID, Origin: sp.Origin, CreatedAt: sp.CreatedAt, Policy: p}, nil
}

// maxVerifiedPolicies bounds the policies kept for attestations.
const maxVerifiedPolicies = 4096

// attestPolicy is Policy for the attestation path, served from the
// policies kept after they passed their integrity check: policies are never
// changed or deleted once created (the store has no such operation), so a
// kept one stays right on every replica, and an edit made in the database
// afterwards never takes effect (GET of the policy still reads the row and
// reports it as policy_integrity).
func (s *Service) attestPolicy(ctx context.Context, appID, id string) (*StoredPolicy, error) {
	if sp, ok := s.verified.Get([2]string{appID, id}); ok {
		return sp, nil
	}
	sp, err := s.Policy(ctx, appID, id)
	if err == nil {
		s.verified.Put([2]string{appID, id}, sp)
	}
	return sp, err
}

// Policy returns appID's policy id; another app's policy is not found.
func (s *Service) Policy(ctx context.Context, appID, id string) (*StoredPolicy, error) {
	sp, err := s.st.GetPolicy(ctx, appID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &fault.Error{Kind: fault.NotFound, Code: "policy_not_found", Msg: fmt.Sprintf("attestation policy %q not found for this app; create one with POST /v1/attestation/policies (ppml policy create)", id)}
	}
	if err != nil {
		return nil, s.internal("loading a policy", err)
	}
	return s.decodeStored(ctx, sp)
}

// LatestPolicy returns appID's most recently created policy.
func (s *Service) LatestPolicy(ctx context.Context, appID string) (*StoredPolicy, error) {
	sp, err := s.st.LatestPolicy(ctx, appID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &fault.Error{Kind: fault.NotFound, Code: "policy_not_found", Msg: "this app has no attestation policy yet, so \"latest\" names none"}
	}
	if err != nil {
		return nil, s.internal("loading a policy", err)
	}
	return s.decodeStored(ctx, sp)
}

func auditEvent(s *Service, action, appID, id string, err error) auditEv {
	ev := auditEv{Time: s.now().UTC(), API: "attestation", Principal: appID, Action: action, KeyID: id, Result: "ok"}
	if err != nil {
		ev.Result, ev.Reason = fault.CodeOf(err), err.Error()
	}
	return ev
}

// --- native flow ---

// Request is a native verification request.
type Request struct {
	AppID       string
	Quote       []byte
	Nonce       []byte
	RuntimeData []byte
	PolicyID    string // "" = the server's default policy
	API         string // for audit and metrics (default "native")
	Remote      string
	NoToken     bool // the caller needs the claims only (release with evidence)
}

// Refusal is a quote that was not accepted, with every reason. It unwraps
// to a *fault.Error (KindForbidden, or KindInvalid for nonce problems), so
// adapters map it like any other error.
type Refusal struct {
	Code    string
	Reasons []string
	Result  *verify.Result
	kind    fault.Kind
}

func (r *Refusal) Error() string {
	return "attestation refused (" + r.Code + "): " + strings.Join(r.Reasons, "; ")
}

func (r *Refusal) Unwrap() error { return &fault.Error{Kind: r.kind, Code: r.Code, Msg: r.Error()} }

// Attestation is an accepted quote.
type Attestation struct {
	Token  string         `json:"token"`
	Claims *Claims        `json:"claims"`
	Result *verify.Result `json:"result"`
}

// DefaultPolicy is what a request without policy_id is evaluated against:
// the quote/policy defaults (UpToDate only, no debug, CRLs required,
// collateral not expired), plus simulated quotes when the server allows them.
func (s *Service) DefaultPolicy() *policy.Policy {
	return &policy.Policy{AllowSimulated: s.cfg.AllowSimulation}
}

// Attest runs the native flow: consume the nonce, verify the quote, require
// report_data[0:32] = SHA-256(nonce || runtime_data), evaluate the policy and
// sign a token. Every outcome is audited.
func (s *Service) Attest(ctx context.Context, req Request) (att *Attestation, err error) {
	if req.API == "" {
		req.API = "native"
	}
	verdict := &Verdict{}
	defer func() {
		var rf *Refusal
		var aerr error
		switch {
		case err == nil:
			aerr = s.record(req.API, req.AppID, req.PolicyID, req.Remote, verdict, "", "")
		case errors.As(err, &rf):
			aerr = s.record(req.API, req.AppID, req.PolicyID, req.Remote, verdict, rf.Code, rf.Error())
		default:
			aerr = s.record(req.API, req.AppID, req.PolicyID, req.Remote, verdict, fault.CodeOf(err), err.Error())
		}
		if aerr != nil {
			att, err = nil, aerr
		}
	}()
	if len(req.Quote) == 0 {
		return nil, fault.Invalidf("missing_quote", "quote (standard base64 of the raw DCAP quote) is required")
	}
	if len(req.Quote) > MaxQuoteBytes {
		return nil, fault.Invalidf("quote_too_large", "the quote is %d bytes, more than the %d accepted", len(req.Quote), MaxQuoteBytes)
	}
	if len(req.Nonce) == 0 {
		return nil, fault.Invalidf("missing_nonce", "nonce (base64, from GET /v1/attestation/nonce) is required")
	}
	if len(req.RuntimeData) > MaxRuntime {
		return nil, fault.Invalidf("runtime_data_too_large", "runtime_data is %d bytes, more than the %d accepted", len(req.RuntimeData), MaxRuntime)
	}
	pol := s.DefaultPolicy()
	if req.PolicyID != "" {
		sp, err := s.attestPolicy(ctx, req.AppID, req.PolicyID)
		if err != nil {
			return nil, err
		}
		pol = sp.Policy
	}
	// The nonce is spent by any attempt, accepted or not.
	if err := s.spendNonce(ctx, req.AppID, req.Nonce); err != nil {
		return nil, err
	}
	now := s.now()
	verdict = s.VerifyQuote(limit.WithCaller(ctx, req.AppID), req.Quote)
	if verdict.Err != nil {
		return nil, verdict.Err
	}
	if verdict.Reason != "" && !(verdict.Result != nil && verdict.Result.Failure == verify.FailCollateralExpired && pol.AllowExpiredCollateral) {
		return nil, &Refusal{Code: verdict.Reason, kind: fault.Forbidden, Reasons: []string{verdict.Message}, Result: verdict.Result}
	}
	res := verdict.Result
	h := sha256.New()
	h.Write(req.Nonce)
	h.Write(req.RuntimeData)
	want := h.Sum(nil)
	rd, _ := hex.DecodeString(res.ReportData)
	if len(rd) < 32 || subtle.ConstantTimeCompare(rd[:32], want) != 1 {
		return nil, &Refusal{Code: ReasonReportDataMismatch, kind: fault.Forbidden, Result: res, Reasons: []string{
			"the quote's report_data does not start with SHA-256(nonce || runtime_data): put that hash in report_data[0:32] when generating the quote, with the nonce of this request"}}
	}
	dec := pol.Evaluate(res)
	if !dec.Accepted {
		return nil, &Refusal{Code: ReasonPolicy, kind: fault.Forbidden, Reasons: dec.Reasons, Result: res}
	}
	rt := sha256.Sum256(req.RuntimeData)
	c := claimsOf(res)
	c.Issuer, c.Subject, c.AppID, c.PolicyID = s.cfg.Issuer, req.AppID, req.AppID, req.PolicyID
	c.ID = uuid.NewString()
	c.IssuedAt = now.Unix()
	c.ExpiresAt = now.Add(s.cfg.TokenTTL).Unix()
	c.RuntimeDataSHA256 = hex.EncodeToString(rt[:])
	if req.NoToken {
		return &Attestation{Claims: c, Result: res}, nil
	}
	signer, err := s.tokenSigner(ctx)
	if err != nil {
		return nil, s.internal("signing the token", err)
	}
	tok, err := signer.Sign(c)
	if err != nil {
		return nil, s.internal("signing the token", err)
	}
	return &Attestation{Token: tok, Claims: c, Result: res}, nil
}

func claimsOf(r *verify.Result) *Claims {
	c := &Claims{TEE: r.TEE, Debug: r.Debug, AdvisoryIDs: r.AdvisoryIDs, FMSPC: r.FMSPC, Simulated: r.Simulated,
		Measurements: r.Measurements}
	if c.AdvisoryIDs == nil {
		c.AdvisoryIDs = []string{}
	}
	if r.TCBStatus != nil {
		c.TCBStatus = *r.TCBStatus
	}
	return c
}

// JWKS returns the token verification keys.
func (s *Service) JWKS(ctx context.Context) (jose.JSONWebKeySet, error) {
	sg, err := s.tokenSigner(ctx)
	if err != nil {
		return jose.JSONWebKeySet{}, err
	}
	return sg.JWKS(), nil
}

// VerifyToken checks a token issued by this service in process: ES256
// signature by the service key, iat not in the future and exp not passed
// (service clock, no leeway), exp at most 5 minutes after iat.
func (s *Service) VerifyToken(ctx context.Context, tok string) (*Claims, error) {
	sg, err := s.tokenSigner(ctx)
	if err != nil {
		return nil, err
	}
	c, err := sg.Verify(tok, s.now())
	if err != nil {
		return nil, &fault.Error{Kind: fault.Unauthenticated, Code: "invalid_token", Msg: err.Error()}
	}
	return c, nil
}

// VerifyTokenJWKS is the remote relying party's check: the token against a
// JWKS fetched from GET /v1/attestation/jwks (see token.VerifyJWKS).
func VerifyTokenJWKS(tok string, jwks jose.JSONWebKeySet, now time.Time, leeway time.Duration) (*Claims, error) {
	return token.VerifyJWKS(tok, jwks, now, leeway)
}

// B64 is standard base64, as every binary field of the APIs.
func B64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
