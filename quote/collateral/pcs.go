package collateral

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/internal/limit"
	"github.com/ppml-project/ppml/quote/pck"
)

// Intel PCS v4 issuer-chain headers.
const (
	HeaderPCKCRLIssuerChain   = "SGX-PCK-CRL-Issuer-Chain"
	HeaderTCBInfoIssuerChain  = "TCB-Info-Issuer-Chain"
	headerTCBInfoIssuerV3     = "SGX-TCB-Info-Issuer-Chain"
	HeaderQEIdentityIssuer    = "SGX-Enclave-Identity-Issuer-Chain"
	IntelPCSBase              = "https://api.trustedservices.intel.com"
	IntelRootCACRLURL         = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
	defaultRefreshBefore      = time.Hour
	maxResponseBytes          = 4 << 20
	certificationV4PathSuffix = "/sgx/certification/v4"
)

// Fetcher obtains collateral from an Intel PCS or a PCCS over the v4 API
// and caches it in memory (and optionally in CacheDir, in the offline
// layout) until shortly before it expires.
type Fetcher struct {
	// BaseURL is the PCCS or PCS host, e.g. "https://pccs:8081" (a
	// trailing "/sgx/certification/v4" is accepted and removed).
	BaseURL string
	// RootCACRLURL overrides where the root CA CRL is fetched from.
	// Default: IntelRootCACRLURL for the Intel PCS, {base}/sgx/certification/v4/rootcacrl
	// for a PCCS.
	RootCACRLURL string
	// APIKey is sent as Ocp-Apim-Subscription-Key when set.
	APIKey string
	// Client defaults to an http.Client with a 30 s timeout.
	Client *http.Client
	// Now is the clock for cache expiry (default time.Now).
	Now func() time.Time
	// RefreshBefore refreshes cached collateral this long before it
	// expires (default 1 h).
	RefreshBefore time.Duration
	// CacheDir, when set, receives every fetched collateral as
	// <tee>-<fmspc>-<ca>.json (readable by LoadDir).
	CacheDir string
	// Limit, when set, bounds the fetches in flight, charged to the caller
	// of limit.WithCaller; a fetch that gets no slot in time fails with its
	// retryable error (and is not remembered as failed).
	Limit *limit.Limiter
	// NegativeTTL is how long a failed fetch is remembered: until then the
	// same platform's Gets fail at once with that error, without a request
	// (default DefaultNegativeTTL).
	NegativeTTL time.Duration

	mu      sync.Mutex
	cache   map[Key]*fetched
	failed  map[Key]*failure
	flights singleflight.Group // one fetch per platform at a time; the others wait for it
}

// DefaultNegativeTTL is the default Fetcher.NegativeTTL.
const DefaultNegativeTTL = time.Minute

type failure struct {
	err   error
	until time.Time
}

type fetched struct {
	col     *Collateral
	expires time.Time
}

// StaleError accompanies cached collateral returned because a refresh
// failed. The collateral is still returned; the verifier reports whether it
// has expired.
type StaleError struct {
	Key     Key
	Expires time.Time
	Err     error
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("collateral %s: refresh failed (%v); serving the cached copy that expires at %s", e.Key, e.Err, e.Expires.UTC().Format(time.RFC3339))
}

func (e *StaleError) Unwrap() error { return e.Err }

func (f *Fetcher) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *Fetcher) base() string {
	b := strings.TrimRight(f.BaseURL, "/")
	b = strings.TrimSuffix(b, certificationV4PathSuffix)
	return strings.TrimSuffix(b, "/tdx/certification/v4")
}

// Get returns collateral for a TEE ("sgx" or "tdx"), FMSPC and PCK CA type
// ("platform" or "processor"). When a refresh fails and a cached copy
// exists, Get returns that copy together with a *StaleError.
func (f *Fetcher) Get(ctx context.Context, tee, fmspc, ca string) (*Collateral, error) {
	fmspc = strings.ToLower(fmspc)
	if tee != "sgx" && tee != "tdx" {
		return nil, fmt.Errorf("pcs: tee %q is neither sgx nor tdx", tee)
	}
	if b, err := hex.DecodeString(fmspc); err != nil || len(b) != 6 {
		return nil, fmt.Errorf("pcs: FMSPC %q must be 12 hex digits", fmspc)
	}
	if ca != pck.CAPlatform && ca != pck.CAProcessor {
		return nil, fmt.Errorf("pcs: CA type %q is neither platform nor processor", ca)
	}
	k := Key{TEE: tee, FMSPC: fmspc, CA: ca}
	refresh := f.RefreshBefore
	if refresh == 0 {
		refresh = defaultRefreshBefore
	}
	f.mu.Lock()
	c, neg := f.cache[k], f.failed[k]
	f.mu.Unlock()
	if c != nil && f.now().Before(c.expires.Add(-refresh)) {
		return c.col, nil
	}
	var (
		col *Collateral
		err error
	)
	if neg != nil && f.now().Before(neg.until) {
		err = fmt.Errorf("%w (remembered: not fetched again before %s)", neg.err, neg.until.UTC().Format(time.RFC3339))
	} else {
		// The fetch outlives a caller that gives up: the others waiting
		// for it, and the cache, still get its answer.
		ch := f.flights.DoChan(k.String(), func() (any, error) { return f.refresh(context.WithoutCancel(ctx), k) })
		select {
		case r := <-ch:
			col, _ = r.Val.(*Collateral)
			err = r.Err
		case <-ctx.Done():
			e := fault.Errorf(fault.Unavailable, "busy", "the collateral of %s is still being fetched from the PCCS; retry in a moment", k)
			e.RetryAfter = time.Second
			err = e
		}
	}
	var cacheErr *cacheDirError
	if err != nil && !errors.As(err, &cacheErr) {
		if c != nil {
			return c.col, &StaleError{Key: k, Expires: c.expires, Err: err}
		}
		return nil, err
	}
	return col, err
}

// cacheDirError: the collateral was fetched, but not written to CacheDir.
type cacheDirError struct{ err error }

func (e *cacheDirError) Error() string {
	return "pcs: fetched collateral but could not write the cache directory: " + e.err.Error()
}
func (e *cacheDirError) Unwrap() error { return e.err }

// refresh fetches k within the limit and records the outcome: the
// collateral in the cache, or the failure for NegativeTTL.
func (f *Fetcher) refresh(ctx context.Context, k Key) (*Collateral, error) {
	release, err := f.Limit.Acquire(ctx, limit.CallerOf(ctx))
	if err != nil {
		return nil, err
	}
	defer release()
	col, expires, err := f.fetch(ctx, k)
	f.mu.Lock()
	if err != nil {
		ttl := f.NegativeTTL
		if ttl <= 0 {
			ttl = DefaultNegativeTTL
		}
		if f.failed == nil {
			f.failed = map[Key]*failure{}
		}
		f.failed[k] = &failure{err: err, until: f.now().Add(ttl)}
	} else {
		if f.cache == nil {
			f.cache = map[Key]*fetched{}
		}
		f.cache[k] = &fetched{col: col, expires: expires}
		delete(f.failed, k)
	}
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	tee, fmspc, ca := k.TEE, k.FMSPC, k.CA
	if f.CacheDir != "" {
		b, err := col.Marshal()
		if err == nil {
			err = os.MkdirAll(f.CacheDir, 0o755)
		}
		if err == nil {
			name := filepath.Join(f.CacheDir, fmt.Sprintf("%s-%s-%s.json", tee, fmspc, ca))
			tmp := name + ".tmp"
			if err = os.WriteFile(tmp, b, 0o644); err == nil {
				err = os.Rename(tmp, name)
			}
		}
		if err != nil {
			return col, &cacheDirError{err}
		}
	}
	return col, nil
}

func (f *Fetcher) get(ctx context.Context, u string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("pcs: %w", err)
	}
	if f.APIKey != "" {
		req.Header.Set("Ocp-Apim-Subscription-Key", f.APIKey)
	}
	cl := f.Client
	if cl == nil {
		cl = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("pcs: GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, nil, fmt.Errorf("pcs: GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return nil, nil, fmt.Errorf("pcs: GET %s: HTTP %d %s", u, resp.StatusCode, msg)
	}
	return body, resp.Header, nil
}

func issuerChain(h http.Header, u string, names ...string) (string, error) {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			s, err := url.PathUnescape(v)
			if err != nil {
				return "", fmt.Errorf("pcs: %s: header %s is not URL-encoded PEM: %v", u, n, err)
			}
			if _, err := ParseChain([]byte(s)); err != nil {
				return "", fmt.Errorf("pcs: %s: header %s: %v", u, n, err)
			}
			return s, nil
		}
	}
	return "", fmt.Errorf("pcs: %s: response lacks the %s header", u, names[0])
}

// crlDER accepts a CRL response body as DER, PEM or hex text.
func crlDER(body []byte) ([]byte, error) {
	t := bytes.TrimSpace(body)
	if len(t) > 0 && t[0] == 0x30 {
		return t, nil
	}
	if bytes.HasPrefix(t, []byte("-----BEGIN")) {
		blk, _ := pem.Decode(t)
		if blk == nil {
			return nil, errors.New("bad PEM CRL")
		}
		return blk.Bytes, nil
	}
	b, err := hex.DecodeString(string(t))
	if err != nil {
		return nil, errors.New("CRL body is neither DER, PEM nor hex")
	}
	return b, nil
}

// signedBody extracts the raw signed object (tcbInfo or enclaveIdentity)
// and its signature from a PCS response, keeping the exact bytes.
func signedBody(body []byte, field string) (string, string, error) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil {
		return "", "", err
	}
	raw, ok := env[field]
	if !ok {
		return "", "", fmt.Errorf("response has no %q", field)
	}
	var sig string
	if err := json.Unmarshal(env["signature"], &sig); err != nil {
		return "", "", fmt.Errorf("response signature: %v", err)
	}
	return string(raw), strings.ToLower(sig), nil
}

func (f *Fetcher) fetch(ctx context.Context, k Key) (*Collateral, time.Time, error) {
	base := f.base()
	sgxAPI := base + "/sgx/certification/v4"
	teeAPI := base + "/" + k.TEE + "/certification/v4"
	col := &Collateral{}

	u := sgxAPI + "/pckcrl?ca=" + k.CA + "&encoding=der"
	body, h, err := f.get(ctx, u)
	if err != nil {
		return nil, time.Time{}, err
	}
	der, err := crlDER(body)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("pcs: %s: %v", u, err)
	}
	col.PCKCRL = hex.EncodeToString(der)
	if col.PCKCRLIssuerChain, err = issuerChain(h, u, HeaderPCKCRLIssuerChain); err != nil {
		return nil, time.Time{}, err
	}

	u = f.RootCACRLURL
	if u == "" {
		if base == IntelPCSBase {
			u = IntelRootCACRLURL
		} else {
			u = sgxAPI + "/rootcacrl"
		}
	}
	if body, _, err = f.get(ctx, u); err != nil {
		return nil, time.Time{}, err
	}
	if der, err = crlDER(body); err != nil {
		return nil, time.Time{}, fmt.Errorf("pcs: %s: %v", u, err)
	}
	col.RootCACRL = hex.EncodeToString(der)

	u = teeAPI + "/tcb?fmspc=" + k.FMSPC
	if body, h, err = f.get(ctx, u); err != nil {
		return nil, time.Time{}, err
	}
	if col.TCBInfo, col.TCBInfoSignature, err = signedBody(body, "tcbInfo"); err != nil {
		return nil, time.Time{}, fmt.Errorf("pcs: %s: %v", u, err)
	}
	if col.TCBInfoIssuerChain, err = issuerChain(h, u, HeaderTCBInfoIssuerChain, headerTCBInfoIssuerV3); err != nil {
		return nil, time.Time{}, err
	}

	u = teeAPI + "/qe/identity"
	if body, h, err = f.get(ctx, u); err != nil {
		return nil, time.Time{}, err
	}
	if col.QEIdentity, col.QEIdentitySignature, err = signedBody(body, "enclaveIdentity"); err != nil {
		return nil, time.Time{}, fmt.Errorf("pcs: %s: %v", u, err)
	}
	if col.QEIdentityIssuerChain, err = issuerChain(h, u, HeaderQEIdentityIssuer); err != nil {
		return nil, time.Time{}, err
	}

	if err := col.Validate(); err != nil {
		return nil, time.Time{}, fmt.Errorf("pcs: fetched %w", err)
	}
	exp, err := Expiry(col)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("pcs: fetched collateral: %w", err)
	}
	return col, exp, nil
}

// Expiry returns the earliest nextUpdate of the TCB info, the QE identity
// and the CRLs of a collateral document.
func Expiry(c *Collateral) (time.Time, error) {
	ti, err := ParseTCBInfo([]byte(c.TCBInfo))
	if err != nil {
		return time.Time{}, err
	}
	qi, err := ParseQEIdentity([]byte(c.QEIdentity))
	if err != nil {
		return time.Time{}, err
	}
	exp := ti.NextUpdate
	if qi.NextUpdate.Before(exp) {
		exp = qi.NextUpdate
	}
	for _, s := range []string{c.RootCACRL, c.PCKCRL} {
		if s == "" {
			continue
		}
		der, err := DecodeCRL(s)
		if err != nil {
			return time.Time{}, err
		}
		l, err := x509.ParseRevocationList(der)
		if err != nil {
			return time.Time{}, err
		}
		if l.NextUpdate.Before(exp) {
			exp = l.NextUpdate
		}
	}
	return exp, nil
}
