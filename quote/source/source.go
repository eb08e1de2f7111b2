// Package source is the one place that chooses what a quote is verified
// against: the trust anchor (the pinned Intel SGX Root CA, a simulation
// root, or a PEM root) and the collateral (one file, an offline directory,
// an Intel PCS / PCCS endpoint), fetched through an injected Getter as
// google/go-tdx-guest's verifier takes its HTTPS getter. The quote is parsed
// once by the caller, its PCK chain once (the verifier's chain cache), and
// the chain's FMSPC and CA type select the collateral.
package source

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/collateral"
	"github.com/ppml-project/ppml/quote/sim"
	"github.com/ppml-project/ppml/quote/verify"
)

// Getter returns the collateral of a platform: TEE ("sgx", "tdx"), FMSPC
// (hex) and PCK CA type (pck.CAPlatform, pck.CAProcessor).
// *collateral.Dir and *collateral.Fetcher are Getters.
type Getter interface {
	Get(ctx context.Context, tee, fmspc, ca string) (*collateral.Collateral, error)
}

// Fixed is one collateral document for every quote (--collateral FILE).
type Fixed struct{ Collateral *collateral.Collateral }

// Get returns the document.
func (f Fixed) Get(context.Context, string, string, string) (*collateral.Collateral, error) {
	return f.Collateral, nil
}

// SimCollateral is the signed collateral of a simulation, by TEE.
type SimCollateral struct{ Sim *sim.SimTEE }

// Get returns the simulation's collateral for tee.
func (s SimCollateral) Get(_ context.Context, tee, _, _ string) (*collateral.Collateral, error) {
	return s.Sim.Collateral(abi.TEE(tee))
}

// Named is a Getter and the setting it comes from, for messages.
type Named struct {
	Name string // e.g. "--collateral-dir"; "" for a lone source whose own error is the message
	Getter
}

// Collateral tries its sources in order; the first answer wins.
type Collateral struct {
	Sources []Named
	// Warn sees a stale answer (a PCCS refresh failed, collateral.StaleError
	// with the cached copy), which is then used; nil: a stale answer is an
	// error.
	Warn func(error)
	// NoSource is the error when there is no source at all.
	NoSource func(tee, fmspc, ca string) error
}

// Get returns the collateral of the first source that has it.
func (c *Collateral) Get(ctx context.Context, tee, fmspc, ca string) (*collateral.Collateral, error) {
	var tried []string
	for _, s := range c.Sources {
		col, err := s.Get(ctx, tee, fmspc, ca)
		var stale *collateral.StaleError
		if err != nil && c.Warn != nil && errors.As(err, &stale) && col != nil {
			c.Warn(err)
			return col, nil
		}
		if err == nil {
			return col, nil
		}
		if Retryable(err) {
			return nil, err
		}
		if len(c.Sources) == 1 && s.Name == "" {
			return nil, err
		}
		tried = append(tried, s.Name+": "+err.Error())
	}
	if len(tried) == 0 {
		if c.NoSource != nil {
			return nil, c.NoSource(tee, fmspc, ca)
		}
		return nil, fmt.Errorf("no collateral for %s FMSPC %s (%s CA): no collateral source", tee, fmspc, ca)
	}
	return nil, fmt.Errorf("no collateral for %s FMSPC %s (%s CA): %s", tee, fmspc, ca, strings.Join(tried, "; "))
}

// Reasons a quote is not verified before the verifier's own checks.
const (
	ReasonSimulated    = "simulated_refused" // its chain names a simulation root, which is not trusted
	ReasonChain        = "pck_chain"         // its PCK chain is unreadable, so no collateral can be chosen
	ReasonNoCollateral = "no_collateral"
)

// Error says why a quote was not handed to the verifier.
type Error struct {
	Reason string
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// Config chooses the trust anchors and the collateral.
type Config struct {
	// Root is the trust anchor; nil: the pinned Intel SGX Root CA. Any
	// other root marks every result simulated.
	Root *x509.Certificate
	// Collateral serves the quotes chaining to Root.
	Collateral Getter
	// Sim, when set, is a second, separate anchor: quotes whose chain names
	// a simulation root are verified against it, with its own collateral.
	Sim *sim.SimTEE
	// RefuseSimulated refuses quotes whose chain names a simulation root
	// when Sim is nil (instead of letting Root's checks fail them).
	RefuseSimulated bool
	// Now is the trusted clock (required).
	Now func() time.Time
	// RejectTrailingBytes refuses quotes with bytes after the signature data.
	RejectTrailingBytes bool
	// Observe, when set, sees the collateral chosen for a quote of Root.
	Observe func(tee, fmspc string, col *collateral.Collateral)
}

// Source verifies parsed quotes against the configured anchors and collateral.
type Source struct {
	cfg  Config
	main *verify.Verifier
	sim  *verify.Verifier // nil without Config.Sim
}

// New returns a Source.
func New(cfg Config) (*Source, error) {
	s := &Source{cfg: cfg}
	var err error
	if s.main, err = verify.New(verify.Options{Root: cfg.Root, Now: cfg.Now, RejectTrailingBytes: cfg.RejectTrailingBytes}); err != nil {
		return nil, err
	}
	if cfg.Sim != nil {
		o := cfg.Sim.VerifyOptions(cfg.Now)
		o.RejectTrailingBytes = cfg.RejectTrailingBytes
		if s.sim, err = verify.New(o); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Verify chooses the anchor and the collateral for q and verifies it. The
// Result is always non-nil (with the quote's measurements); the error is a
// *Error when the quote did not reach the verifier, else the verifier's.
func (s *Source) Verify(ctx context.Context, q *abi.Quote) (*verify.Result, error) {
	fixed, isFixed := s.cfg.Collateral.(Fixed)
	if isFixed && s.cfg.Sim == nil && !s.cfg.RefuseSimulated {
		return s.main.VerifyQuote(q, fixed.Collateral) // nothing to choose: the verifier judges the chain
	}
	chain, err := s.main.Chain(q.PCKChainPEM)
	if chain != nil && (s.cfg.Sim != nil || s.cfg.RefuseSimulated) && namesSimulationRoot(chain.Certs) {
		if s.sim == nil {
			res, e := s.refuse(q, ReasonSimulated, "the quote's PCK chain names a simulation root, which this verifier does not trust")
			res.Simulated = true
			return res, e
		}
		col, err := s.cfg.Sim.Collateral(q.TEE)
		if err != nil {
			return s.refuse(q, ReasonNoCollateral, err.Error())
		}
		return s.sim.VerifyQuote(q, col)
	}
	if err != nil {
		return s.refuse(q, ReasonChain, err.Error())
	}
	// The collateral is looked up (perhaps fetched from a PCCS) only for a
	// quote whose own chain and signatures hold: a forged one costs nothing.
	tee := string(q.TEE)
	return s.main.VerifyQuoteLookup(q, func(chain *verify.Chain) (*collateral.Collateral, error) {
		col, err := s.cfg.Collateral.Get(ctx, tee, chain.FMSPC, chain.CAType)
		if Retryable(err) {
			return nil, err
		}
		if err != nil {
			return nil, &Error{Reason: ReasonNoCollateral, Msg: err.Error()}
		}
		if s.cfg.Observe != nil {
			s.cfg.Observe(tee, chain.FMSPC, col)
		}
		return col, nil
	})
}

// Retryable reports whether err is a refusal to do slow work now (a full
// PCCS fetch limit), which the caller should retry, not a missing collateral.
func Retryable(err error) bool {
	k := fault.KindOf(err)
	return err != nil && (k == fault.Unavailable || k == fault.TooMany)
}

// refuse returns the quote's unverified measurements and why it did not
// reach the verifier.
func (s *Source) refuse(q *abi.Quote, reason, msg string) (*verify.Result, error) {
	res, _ := s.main.Inspect(q)
	return res, &Error{Reason: reason, Msg: msg}
}

// VerifyRaw parses a raw quote once and verifies it. A quote that does not
// parse is judged by the verifier (failure "format") when the collateral
// is Fixed; otherwise no collateral can be chosen for it (ReasonChain, and
// the Result is nil).
func (s *Source) VerifyRaw(ctx context.Context, raw []byte) (*verify.Result, error) {
	q, err := abi.ParseQuote(raw)
	if err != nil {
		if f, ok := s.cfg.Collateral.(Fixed); ok {
			return s.main.Verify(raw, f.Collateral)
		}
		return nil, &Error{Reason: ReasonChain, Msg: err.Error()}
	}
	return s.Verify(ctx, q)
}

func namesSimulationRoot(certs []*x509.Certificate) bool {
	for _, c := range certs {
		if sim.IsSimulationRoot(c) || c.Issuer.CommonName == sim.RootCommonName {
			return true
		}
	}
	return false
}

// ReadRoot reads a PEM trust anchor (exactly one certificate); flag names
// the setting in messages.
func ReadRoot(flag, path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	certs, err := collateral.ParseChain(b)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v", flag, path, err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("%s %s holds %d certificates, want exactly one", flag, path, len(certs))
	}
	return certs[0], nil
}

// OpenSim loads the simulation in dir, or creates one when dir holds none
// (it never overwrites a broken one); created says which.
func OpenSim(dir string) (s *sim.SimTEE, created bool, err error) {
	if s, err = sim.Load(dir); err == nil {
		return s, false, nil
	}
	s, ierr := sim.Init(dir)
	if ierr != nil {
		return nil, false, fmt.Errorf("simulation PKI in %s: %v (creating one: %v)", dir, err, ierr)
	}
	return s, true, nil
}
