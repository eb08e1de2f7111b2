// Package attestation is the Attestation Service core inside `ppml serve`:
// it verifies Intel SGX/TDX quotes (parse once → anchor and collateral chosen
// by quote/source → verify with the service clock → policy → decision),
// keeps nonces and per-app policies in the store, and issues signed result
// tokens (wire/token). The protocol adapters (api/bigdlas, api/ehsm,
// api/native) only translate wire formats.
//
// Trust anchors: quotes are verified against the pinned Intel SGX Root CA.
// With AllowSimulation the simulation root of <data-dir>/sim is a second,
// separate anchor, used only for quotes whose PCK chain names it; every such
// result and token says simulated: true. Without AllowSimulation a quote
// chaining to a simulation root is refused; nothing falls back silently.
package attestation

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ppml-project/ppml/audit"
	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/internal/boundedcache"
	"github.com/ppml-project/ppml/internal/limit"
	"github.com/ppml-project/ppml/kms/rootkey"
	"github.com/ppml-project/ppml/metrics"
	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/collateral"
	"github.com/ppml-project/ppml/quote/sim"
	"github.com/ppml-project/ppml/quote/source"
	"github.com/ppml-project/ppml/quote/verify"
	"github.com/ppml-project/ppml/store"
	"github.com/ppml-project/ppml/store/rowmac"
	"github.com/ppml-project/ppml/wire/token"
)

// Limits.
const (
	NonceTTL      = 5 * time.Minute
	NonceBytes    = 32
	MaxQuoteBytes = 16 << 10
	MaxRuntime    = 64 << 10
	// nonceRetention keeps expired nonces a while so a late use is told
	// "expired" rather than "unknown".
	nonceRetention = time.Hour
)

// SigningKeyMeta is the meta entry holding the token signing key (PKCS#8,
// wrapped under the root key; re-wrapped on root key rotation).
const SigningKeyMeta = store.WrappedMetaPrefix + "attestation-signing-key"

// SimRefusedMsg is the refusal of a simulated quote on a server without
// --allow-simulation.
const SimRefusedMsg = "simulated quote refused: start the server with --allow-simulation"

// Refusal reason codes (audit, metrics, API error codes).
const (
	ReasonMalformed          = "malformed_quote"
	ReasonSimulated          = "simulated_refused"
	ReasonNoCollateral       = "no_collateral"
	ReasonNotVerified        = "quote_not_verified"
	ReasonNonceUnknown       = "nonce_unknown_or_used"
	ReasonNonceExpired       = "nonce_expired"
	ReasonReportDataMismatch = "report_data_mismatch"
	ReasonPolicy             = "policy_refused"
)

// Store is what the service keeps: policies and nonces, and its token
// signing key as a root-wrapped meta entry.
type Store interface {
	store.AttestationStore
	GetMeta(ctx context.Context, name string) ([]byte, error)
	PutMetaIfAbsent(ctx context.Context, name string, value []byte) (bool, error)
}

// Config configures a Service.
type Config struct {
	Store Store
	// Root wraps the token signing key; while it is sealed no token is signed.
	Root    *rootkey.Keyring
	Now     func() time.Time // the service clock; time.Now if nil
	Audit   *audit.Logger
	Metrics *metrics.Metrics
	Logger  *slog.Logger

	// AllowSimulation trusts the simulation root in SimDir (created if
	// missing) as a separate anchor for simulated quotes.
	AllowSimulation bool
	SimDir          string

	// AllowDebugEnclaves accepts debug enclaves and TDs on the BigDL AS and
	// eHSM quote routes, whose policies cannot say allow_debug (native
	// policies say it themselves). Every such result says debug: true and
	// is logged: a debug enclave's memory is readable by its host.
	AllowDebugEnclaves bool

	// Collateral sources for Intel quotes, tried in this order: one file,
	// an offline directory (indexed by TEE, FMSPC, CA), a PCS/PCCS v4 URL.
	CollateralFile string
	CollateralDir  string
	PCCSURL        string
	PCCSAPIKey     string
	// PCCSLimit bounds the PCCS fetches in flight (charged to the app whose
	// quote needs one; zero fields: DefaultPCCSLimit), PCCSNegativeTTL how
	// long a failed fetch is remembered (0: collateral.DefaultNegativeTTL).
	PCCSLimit       limit.Config
	PCCSNegativeTTL time.Duration
	// ForgedQuoteDelay, when > 0, is how long a quote that fails its own
	// checks (format, PCK chain, signatures: a forged credential, as a
	// wrong API key is) waits before it is answered, so that an app
	// flooding with forged quotes over a few connections gets few answers.
	ForgedQuoteDelay time.Duration

	// TokenTTL is the token validity (default and maximum 5 minutes).
	TokenTTL time.Duration
	Issuer   string // iss claim, default "ppml"
}

// DefaultPCCSLimit: fetches are rare (one per platform and collateral
// lifetime, shared by concurrent requests, and only for quotes whose own
// signatures hold), so a few at a time, two per app, each waiting up to
// 10 s for a slot.
var DefaultPCCSLimit = limit.Config{Global: 4, PerCaller: 2, Wait: 10 * time.Second}

// Service is the Attestation Service core.
type Service struct {
	cfg    Config
	root   *rootkey.Keyring
	now    func() time.Time
	st     Store
	log    *slog.Logger
	quotes *source.Source
	simTEE *sim.SimTEE

	mu     sync.Mutex
	signer *token.Signer

	rows *rowmac.Keeper

	verified *boundedcache.Map[[2]string, *StoredPolicy] // see attestPolicy
	pccs     *limit.Limiter
}

// New builds the service. It loads (or, with AllowSimulation, creates) the
// simulation PKI and the configured collateral; the signing key is loaded
// now when the KMS is unsealed, else on first use.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Root == nil || cfg.Store == nil {
		return nil, errors.New("attestation: Root and Store are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TokenTTL <= 0 || cfg.TokenTTL > token.MaxTTL {
		cfg.TokenTTL = token.MaxTTL
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "ppml"
	}
	s := &Service{cfg: cfg, root: cfg.Root, now: cfg.Now, st: cfg.Store, log: cfg.Logger, rows: newPolicyRows(cfg),
		verified: boundedcache.New[[2]string, *StoredPolicy](maxVerifiedPolicies)}
	var err error
	if cfg.AllowSimulation {
		if cfg.SimDir == "" {
			return nil, errors.New("attestation: --allow-simulation needs a simulation directory")
		}
		var created bool
		if s.simTEE, created, err = source.OpenSim(cfg.SimDir); err != nil {
			return nil, err
		}
		if created {
			s.log.Warn("created a simulation PKI for simulated quotes (--allow-simulation)", "dir", cfg.SimDir)
		}
		s.log.Warn("simulated quotes are accepted (--allow-simulation): every simulated result and token says simulated: true; never use this in production", "sim_dir", cfg.SimDir)
	}
	s.pccs = limit.New("PCCS collateral fetches", cfg.PCCSLimit.Or(DefaultPCCSLimit))
	cols, err := source.CollateralSettings{File: cfg.CollateralFile, Dir: cfg.CollateralDir, PCCSURL: cfg.PCCSURL, PCCSAPIKey: cfg.PCCSAPIKey,
		PCCSLimit: s.pccs, PCCSNegativeTTL: cfg.PCCSNegativeTTL,
		Now: cfg.Now, Named: true,
		Warn: func(err error) { s.log.Warn("using cached collateral: refreshing it from the PCCS failed", "err", err) },
		NoSource: func(tee, fmspc, ca string) error {
			return fmt.Errorf("no collateral for %s FMSPC %s (%s CA): the server has no collateral source; start it with --collateral, --collateral-dir or --pccs-url", tee, fmspc, ca)
		}}.Open()
	if err != nil {
		return nil, err
	}
	if cols.(*source.Collateral).Empty() {
		s.log.Info("no collateral source for Intel quotes (--collateral, --collateral-dir, --pccs-url): real quotes will be refused with no_collateral")
	}
	s.quotes, err = source.New(source.Config{Collateral: cols, Sim: s.simTEE, RefuseSimulated: true, Now: cfg.Now,
		Observe: func(tee, fmspc string, col *collateral.Collateral) {
			if exp, err := collateral.Expiry(col); err == nil {
				s.cfg.Metrics.SetCollateralExpiry(tee, fmspc, exp) // alerts fire before it lapses
			}
		}})
	if err != nil {
		return nil, err
	}
	if !cfg.Root.Sealed() {
		if _, err := s.tokenSigner(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// PCCSInFlight is the number of collateral fetches from the PCCS in
// progress (metrics).
func (s *Service) PCCSInFlight() int { return s.pccs.InFlight() }

// AllowSimulation reports whether simulated quotes are accepted.
func (s *Service) AllowSimulation() bool { return s.cfg.AllowSimulation }

// Sim returns the simulation PKI (nil without AllowSimulation).
func (s *Service) Sim() *sim.SimTEE { return s.simTEE }

// Now returns the service clock.
func (s *Service) Now() time.Time { return s.now() }

// tokenSigner loads or creates the ES256 signing key.
func (s *Service) tokenSigner(ctx context.Context) (*token.Signer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.signer != nil {
		return s.signer, nil
	}
	if s.root.Sealed() {
		return nil, &fault.Error{Kind: fault.Sealed, Code: "sealed", Msg: "the KMS is sealed: attestation tokens are signed with a key wrapped under the root key; unseal first"}
	}
	aad := store.WrappedMetaAAD(SigningKeyMeta)
	blob, err := s.st.GetMeta(ctx, SigningKeyMeta)
	if errors.Is(err, store.ErrNotFound) {
		if err := s.createSigningKey(ctx); err != nil {
			return nil, err
		}
		blob, err = s.st.GetMeta(ctx, SigningKeyMeta) // another replica may have won
	}
	if err != nil {
		return nil, fmt.Errorf("reading the attestation signing key: %w", err)
	}
	der, err := s.root.Unwrap(blob, aad)
	if err != nil {
		return nil, fmt.Errorf("unwrapping the attestation signing key: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("attestation signing key: %w", err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("attestation signing key is not ECDSA")
	}
	sg, err := token.NewSigner(ek)
	if err != nil {
		return nil, err
	}
	s.signer = sg
	return sg, nil
}

func (s *Service) createSigningKey(ctx context.Context) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	wrote := false
	err = s.root.Seal(ctx, der, store.WrappedMetaAAD(SigningKeyMeta), func(wrapped []byte) error {
		var err error
		wrote, err = s.st.PutMetaIfAbsent(ctx, SigningKeyMeta, wrapped)
		return err
	})
	if err != nil {
		return fmt.Errorf("storing the attestation signing key: %w", err)
	}
	if wrote {
		s.log.Info("generated the attestation token signing key (ES256)")
	}
	return nil
}

// Verdict is the outcome of verifying a quote, before any policy.
type Verdict struct {
	// Result is the verifier's result; nil when the quote did not parse.
	Result *verify.Result
	// Err is a retryable refusal to judge the quote now (the PCCS fetch
	// its collateral needs got no slot in time); Reason is then "busy".
	Err error
	// Reason is "" when the quote verified, else a Reason* code.
	Reason  string
	Message string
}

// Simulated reports whether the quote was verified against the simulation root.
func (v *Verdict) Simulated() bool { return v.Result != nil && v.Result.Simulated }

// TEE returns the quote's TEE ("" when it did not parse).
func (v *Verdict) TEE() string {
	if v.Result == nil {
		return ""
	}
	return v.Result.TEE
}

// TCBStatus returns the TCB status ("" when none).
func (v *Verdict) TCBStatus() string {
	if v.Result == nil || v.Result.TCBStatus == nil {
		return ""
	}
	return *v.Result.TCBStatus
}

// VerifyQuote runs parse → anchor and collateral (quote/source) → verify.
// It never consults a policy. A PCCS fetch it needs is charged to the app
// of limit.WithCaller(ctx).
func (s *Service) VerifyQuote(ctx context.Context, raw []byte) *Verdict {
	v := s.verifyQuote(ctx, raw)
	if d := s.cfg.ForgedQuoteDelay; d > 0 && forged(v) {
		limit.Sleep(ctx, d)
	}
	return v
}

// ownFailures are the failures of the checks a quote needs no collateral
// for: it is malformed or forged, not merely out of date or unwanted.
var ownFailures = map[string]bool{verify.FailFormat: true, verify.FailPCKChain: true, verify.FailPCKCertTime: true,
	verify.FailQEReportSignature: true, verify.FailQEReportData: true, verify.FailQuoteSignature: true}

// forged reports whether a verdict refuses a malformed or forged quote
// (a Failure of "": its PCK chain did not even decode).
func forged(v *Verdict) bool {
	return v.Reason == ReasonMalformed ||
		v.Reason == ReasonNotVerified && v.Result != nil && (v.Result.Failure == "" || ownFailures[v.Result.Failure])
}

func (s *Service) verifyQuote(ctx context.Context, raw []byte) *Verdict {
	if len(raw) == 0 {
		return &Verdict{Reason: ReasonMalformed, Message: "the quote is empty"}
	}
	if len(raw) > MaxQuoteBytes {
		return &Verdict{Reason: ReasonMalformed, Message: fmt.Sprintf("the quote is %d bytes, more than the %d accepted", len(raw), MaxQuoteBytes)}
	}
	q, err := abi.ParseQuote(raw)
	if err != nil {
		return &Verdict{Reason: ReasonMalformed, Message: "the quote does not parse: " + err.Error()}
	}
	res, err := s.quotes.Verify(ctx, q)
	if source.Retryable(err) {
		return &Verdict{Result: res, Err: err, Reason: fault.CodeOf(err), Message: err.Error()}
	}
	var se *source.Error
	if errors.As(err, &se) {
		switch se.Reason {
		case source.ReasonSimulated:
			return &Verdict{Result: res, Reason: ReasonSimulated, Message: SimRefusedMsg}
		case source.ReasonChain:
			return &Verdict{Result: res, Reason: ReasonNotVerified, Message: "quote not verified (pck_chain): the quote's PCK certificate chain is unusable: " + se.Msg}
		}
		return &Verdict{Result: res, Reason: ReasonNoCollateral, Message: se.Msg}
	}
	return finish(res, err)
}

func finish(res *verify.Result, err error) *Verdict {
	v := &Verdict{Result: res}
	if err != nil {
		v.Reason = ReasonNotVerified
		v.Message = "quote not verified: " + err.Error()
		var ve *verify.Error
		if errors.As(err, &ve) {
			v.Message = fmt.Sprintf("quote not verified (%s): %s", ve.Code, ve.Msg)
		}
	}
	return v
}

// record writes the audit event and the metrics of one verification; it
// returns an Unavailable error when the audit record could not be written.
func (s *Service) record(api, appID, policyID, remote string, v *Verdict, result, reason string) error {
	if result == "" {
		result = "accepted"
	}
	s.cfg.Metrics.Attestation(v.TEE(), v.TCBStatus(), result)
	ev := audit.Event{Time: s.now().UTC(), API: api, Principal: appID, Action: "VerifyQuote", KeyID: policyID,
		Remote: remote, Result: "ok"}
	if result != "accepted" {
		ev.Result, ev.Reason = result, reason
	} else if v.Simulated() {
		ev.Reason = "simulated: true"
	}
	if err := s.cfg.Audit.Record(ev); err != nil {
		s.log.Error("audit record not written: failing the request", "action", "VerifyQuote", "err", err)
		return audit.Refusal("VerifyQuote")
	}
	return nil
}

// Purge forgets long-expired nonces (housekeeping).
func (s *Service) Purge(ctx context.Context) error {
	return s.st.PurgeNonces(ctx, s.now().Add(-nonceRetention))
}

type auditEv = audit.Event
