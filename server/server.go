// Package server assembles `ppml serve`: it opens the store and the root
// key, builds the kms core, mounts every protocol adapter on one handler,
// and runs the HTTPS listeners and background jobs.
package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ppml-project/ppml/enclave"
	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/quote/sim"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ppml-project/ppml/api/bigdlas"
	"github.com/ppml-project/ppml/api/bigdlkms"
	"github.com/ppml-project/ppml/api/ehsm"
	"github.com/ppml-project/ppml/api/httputil"
	"github.com/ppml-project/ppml/api/native"
	"github.com/ppml-project/ppml/attestation"
	"github.com/ppml-project/ppml/audit"
	"github.com/ppml-project/ppml/internal/limit"
	"github.com/ppml-project/ppml/internal/tlsutil"
	"github.com/ppml-project/ppml/kms"
	"github.com/ppml-project/ppml/kms/rootkey"
	"github.com/ppml-project/ppml/kms/secrets"
	"github.com/ppml-project/ppml/metrics"
	"github.com/ppml-project/ppml/quote/collateral"
	"github.com/ppml-project/ppml/store"
)

// Config is everything `ppml serve` takes.
type Config struct {
	Addr         string // main listener, every API
	BigDLKMSAddr string // optional extra listener (BigDL's 9876)
	BigDLASAddr  string // optional extra listener (BigDL AS's 9875), GET / answers the AS banner

	DataDir      string
	DB           string // postgres://... or a SQLite path; default <data-dir>/ppml.db
	TLSCert      string
	TLSKey       string
	InsecureHTTP bool
	// TLSInMemory generates the TLS key at start, in memory only (inside
	// an enclave the host never sees it), for TLSDNSNames; only the public
	// certificate is written (<data-dir>/tls/server.crt).
	TLSInMemory bool
	TLSDNSNames []string

	RootKeyProvider string // file (default) or shamir
	RootKeyFile     string // default <data-dir>/root.key (created)
	AdminTokenFile  string // default <data-dir>/admin.token (created)
	// AdminTokenSHA256 (hex) replaces the admin token file: only the hash
	// is configured (in an enclave: measured in the manifest), the
	// operator keeps the token.
	AdminTokenSHA256 string
	OpenEnrollment   bool

	DeletionWindow   time.Duration
	BigDLDataKeyBits int
	// BigDLDataKeyErrorBodies restores upstream's answer to a failing GET
	// /dataKey (a status and a text body) instead of a reset connection.
	// Dangerous: BigDL's client, which ignores the status, encrypts data
	// with the error text as its key.
	BigDLDataKeyErrorBodies bool
	EHSMMirrorStatus        bool
	EHSMBindNonce           bool // eHSM VerifyQuote: report_data must start with SHA-256(nonce)
	// MetricsTokenFile, when set, holds the bearer token /metrics requires
	// (Prometheus: bearer_token_file; the ServiceMonitor: bearerTokenSecret).
	MetricsTokenFile string
	// SelfAttestation lets clients attest this server (eHSM GenerateQuote):
	// "" (off), "gramine" (/dev/attestation inside Gramine) or "simulated"
	// (with AllowSimulation: a simulated enclave in <data-dir>/self-enclave).
	SelfAttestation string
	AuditLog        string // default <data-dir>/audit.log
	AuditSync       string // always or batch (default): see audit.Sync

	// Attestation Service.
	AllowSimulation bool // accept simulated quotes (simulation PKI in SimDir)
	// AllowDebugEnclaves accepts debug enclaves on the BigDL AS and eHSM
	// quote routes (native policies use allow_debug); results say debug: true.
	AllowDebugEnclaves bool
	SimDir             string // default <data-dir>/sim, created on first start
	CollateralFile     string // one collateral JSON file for Intel quotes
	CollateralDir      string // offline collateral directory (TEE, FMSPC, CA)
	PCCSURL            string // Intel PCS / PCCS v4 base URL
	PCCSAPIKey         string // Ocp-Apim-Subscription-Key for the Intel PCS

	// Limits bound the slow work any caller can cause; zero fields take
	// DefaultLimits.
	Limits Limits

	Logger *slog.Logger
	Now    func() time.Time
}

// Limits bound slow operations: argon2id hashes of BigDL tokens (per user
// name presented), RSA key generation (per app) and PCCS collateral
// fetches (per app), each with a global number in flight, a per-caller
// share and a wait after which the caller gets 503 busy (429 for a caller
// over its share) with Retry-After.
type Limits struct {
	Argon, RSA, PCCS limit.Config
	// PCCSNegativeTTL is how long a failed collateral fetch is remembered.
	PCCSNegativeTTL time.Duration
	// AuthFailureDelay is how long a refused authentication waits before
	// its answer (negative: none).
	AuthFailureDelay time.Duration
}

// authFailureDelay is Limits.AuthFailureDelay with its default.
func authFailureDelay(cfg Config) time.Duration {
	if cfg.Limits.AuthFailureDelay == 0 {
		return kms.DefaultAuthFailureDelay
	}
	return cfg.Limits.AuthFailureDelay
}

// DefaultLimits are the limits of a server started without settings.
func DefaultLimits() Limits {
	k := kms.DefaultLimits()
	return Limits{Argon: k.Argon, RSA: k.RSA, PCCS: attestation.DefaultPCCSLimit, PCCSNegativeTTL: collateral.DefaultNegativeTTL,
		AuthFailureDelay: kms.DefaultAuthFailureDelay}
}

// Server is a configured, not yet listening, ppml service.
type Server struct {
	cfg Config
	// metricsToken is the SHA-256 of the /metrics bearer token; zero: open.
	metricsToken [32]byte
	log          *slog.Logger
	store        store.Store
	root         *rootkey.Keyring
	svc          *kms.Service
	secrets      *secrets.Service
	attest       *attestation.Service
	self         enclave.Quoter
	audit        *audit.Logger
	metrics      *metrics.Metrics
	tlsCert      *tls.Certificate
	CertPath     string // the TLS certificate clients should trust (--ca-file)
	handler      http.Handler
}

// New opens state and builds the handler.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	// Every store call is timed (ppml_store_operation_duration_seconds);
	// calls made before the metrics exist are not recorded.
	core, err := openCore(ctx, cfg, func(op string, err error, d time.Duration) { s.metrics.ObserveStore(op, err, d) })
	if err != nil {
		return nil, err
	}
	s.store, s.root, s.svc, s.audit = core.Store, core.Root, core.Service, core.Audit
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	st, kr := core.Store, core.Root
	s.secrets = secrets.New(secrets.Config{Store: st, Root: kr, Keys: s.svc, Audit: s.audit, Logger: s.log, Now: s.svc.Now})
	if cfg.OpenEnrollment {
		s.log.Warn("open enrollment: anyone who reaches this server can create apps and BigDL users (--open-enrollment)")
	}
	if cfg.AllowDebugEnclaves {
		s.log.Warn("DEBUG ENCLAVES ACCEPTED on the BigDL AS and eHSM quote routes (--allow-debug-enclaves): their memory is readable by the host; for development on real SGX only, every such result says debug: true")
	}
	if cfg.BigDLDataKeyErrorBodies {
		s.log.Warn("DANGEROUS: a failing BigDL GET /dataKey answers with an error text (--bigdl-datakey-error-bodies); BigDL's client ignores the status and encrypts data with that text as the key")
	}
	s.metrics = metrics.New(s.svc)
	simDir := cfg.SimDir
	if simDir == "" {
		simDir = filepath.Join(cfg.DataDir, "sim")
	}
	s.attest, err = attestation.New(ctx, attestation.Config{Store: st, Root: kr, Now: s.svc.Now, Audit: s.audit, Metrics: s.metrics, Logger: s.log,
		AllowSimulation: cfg.AllowSimulation, AllowDebugEnclaves: cfg.AllowDebugEnclaves, SimDir: simDir, CollateralFile: cfg.CollateralFile, CollateralDir: cfg.CollateralDir,
		PCCSURL: cfg.PCCSURL, PCCSAPIKey: cfg.PCCSAPIKey, PCCSLimit: cfg.Limits.PCCS, PCCSNegativeTTL: cfg.Limits.PCCSNegativeTTL,
		ForgedQuoteDelay: authFailureDelay(cfg)})
	if err != nil {
		return nil, fmt.Errorf("attestation service: %w", err)
	}
	s.metrics.InFlight(func() map[string]int {
		n := s.svc.InFlight()
		n["pccs"] = s.attest.PCCSInFlight()
		return n
	})
	s.svc.SetReleaseAuthorizer(s.attest) // attested key release checks tokens in process
	if s.self, err = selfQuoter(cfg, simDir); err != nil {
		return nil, err
	}

	if !cfg.InsecureHTTP {
		var cert tls.Certificate
		if cfg.TLSInMemory {
			if cfg.TLSCert != "" || cfg.TLSKey != "" {
				return nil, errors.New("--tls-in-memory generates the key: do not give --tls-cert or --tls-key")
			}
			var certPEM []byte
			if cert, certPEM, err = tlsutil.InMemory(cfg.TLSDNSNames); err != nil {
				return nil, err
			}
			dir := filepath.Join(cfg.DataDir, "tls")
			s.CertPath = filepath.Join(dir, "server.crt")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, err
			}
			if err := os.WriteFile(s.CertPath, certPEM, 0o644); err != nil {
				return nil, fmt.Errorf("writing the public certificate: %w", err)
			}
			// The certificate is public; logging it lets operators pin it
			// (kubectl logs) where the file is inside an enclave.
			s.log.Info("TLS key generated in memory (--tls-in-memory): the self-quote binds its hash", "path", s.CertPath, "certificate", string(certPEM))
		} else if cfg.TLSCert != "" || cfg.TLSKey != "" {
			if cfg.TLSCert == "" || cfg.TLSKey == "" {
				return nil, errors.New("--tls-cert and --tls-key go together")
			}
			cert, err = tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
			if err != nil {
				return nil, fmt.Errorf("loading TLS key pair: %w", err)
			}
			s.CertPath = cfg.TLSCert
		} else {
			var created bool
			cert, s.CertPath, created, err = tlsutil.EnsureSelfSigned(filepath.Join(cfg.DataDir, "tls"))
			if err != nil {
				return nil, fmt.Errorf("self-signed TLS certificate: %w", err)
			}
			// The CA is the last certificate of the chain (a legacy directory:
			// the one self-signed certificate); its fingerprint, unlike the
			// leaf's, stays the same across renewals.
			ca := cert.Certificate[len(cert.Certificate)-1]
			s.log.Info("self-signed TLS certificate: clients trust its CA with --ca-file", "ca", filepath.Join(cfg.DataDir, "tls", "ca.crt"), "ca_sha256", tlsutil.Fingerprint(tls.Certificate{Certificate: [][]byte{ca}}), "path", s.CertPath, "created", created)
		}
		s.log.Info("TLS certificate", "sha256", tlsutil.Fingerprint(cert))
		if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil {
			s.metrics.SetTLSCertificateExpiry("server", leaf.Subject.CommonName, leaf.NotAfter)
		}
		s.tlsCert = &cert
	} else {
		s.log.Warn("plain HTTP (--insecure-http): credentials and keys cross the network unencrypted")
	}
	if cfg.MetricsTokenFile != "" {
		b, err := os.ReadFile(cfg.MetricsTokenFile)
		if err != nil {
			return nil, fmt.Errorf("--metrics-token-file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if len(tok) < 16 {
			return nil, fmt.Errorf("--metrics-token-file %s: the token is empty or shorter than 16 characters", cfg.MetricsTokenFile)
		}
		s.metricsToken = sha256.Sum256([]byte(tok))
	}
	s.handler = s.buildHandler()
	ok = true
	return s, nil
}

// SelfMeasurements are the measurements of a simulated self-attesting
// server (--self-attestation simulated), so tests and policies can name them.
var SelfMeasurements = sim.Measurements{
	MREnclave: sha256.Sum256([]byte("ppml serve, simulated enclave")),
	MRSigner:  sha256.Sum256([]byte("ppml, simulated signer")),
}

func selfQuoter(cfg Config, simDir string) (enclave.Quoter, error) {
	switch cfg.SelfAttestation {
	case "", "none":
		return nil, nil
	case "gramine":
		if cfg.DB == "" || !strings.Contains(cfg.DB, "://") {
			return nil, errors.New("--self-attestation gramine needs --db postgres://...: the embedded SQLite store uses WAL, whose shared-memory file Gramine-SGX refuses to map, and its files would be plaintext and unauthenticated on the host")
		}
		q, err := enclave.Gramine("/dev/attestation")
		if err != nil {
			return nil, fmt.Errorf("--self-attestation gramine: %w", err)
		}
		return q, nil
	case "simulated":
		if !cfg.AllowSimulation {
			return nil, errors.New("--self-attestation simulated needs --allow-simulation")
		}
		dir := filepath.Join(cfg.DataDir, "self-enclave")
		if err := enclave.PrepareSim(dir, simDir, "sgx", SelfMeasurements); err != nil {
			return nil, err
		}
		return enclave.Gramine(dir)
	}
	return nil, fmt.Errorf("--self-attestation %q: want none, gramine or simulated", cfg.SelfAttestation)
}

// adminCredential is the admin token (from --admin-token-file or the
// data directory), or only its SHA-256 with --admin-token-sha256.
func adminCredential(cfg Config) (token string, hash [32]byte, err error) {
	if cfg.AdminTokenSHA256 == "" {
		token, err = loadAdminToken(cfg)
		return token, hash, err
	}
	if cfg.AdminTokenFile != "" {
		return "", hash, errors.New("--admin-token-sha256 and --admin-token-file: give one")
	}
	h, err := hex.DecodeString(cfg.AdminTokenSHA256)
	if err != nil || len(h) != 32 {
		return "", hash, errors.New("--admin-token-sha256: want 64 hex digits, the SHA-256 of the admin token (sha256sum < admin.token, without the trailing newline)")
	}
	copy(hash[:], h)
	return "", hash, nil
}

func loadAdminToken(cfg Config) (string, error) {
	path := cfg.AdminTokenFile
	if path == "" {
		path = filepath.Join(cfg.DataDir, "admin.token")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			raw := make([]byte, 32)
			if _, err := rand.Read(raw); err != nil {
				return "", err
			}
			tok := base64.RawURLEncoding.EncodeToString(raw)
			if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
				return "", fmt.Errorf("writing admin token: %w", err)
			}
			cfg.Logger.Info("generated the admin token (enrollment, root key operations)", "path", path)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading --admin-token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return "", fmt.Errorf("admin token in %s is shorter than 16 characters", path)
	}
	return tok, nil
}

// Service returns the kms core.
func (s *Server) Service() *kms.Service { return s.svc }

// Attestation returns the Attestation Service core.
func (s *Server) Attestation() *attestation.Service { return s.attest }

// Secrets returns the secret manager (tests run its housekeeping directly).
func (s *Server) Secrets() *secrets.Service { return s.secrets }

// Metrics returns the metrics registry holder.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// Handler returns the HTTP handler serving every API.
func (s *Server) Handler() http.Handler { return s.handler }

// metricsAuth requires the metrics bearer token when one is configured.
func (s *Server) metricsAuth(next http.Handler) http.Handler {
	if s.metricsToken == [32]byte{} {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := sha256.Sum256([]byte(httputil.BearerToken(r)))
		if subtle.ConstantTimeCompare(got[:], s.metricsToken[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			native.WriteError(w, &fault.Error{Kind: fault.Unauthenticated, Code: "metrics_token", Msg: "/metrics needs 'Authorization: Bearer <token>' with the token of the server's --metrics-token-file"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) buildHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		native.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("/readyz", s.readyz)
	mux.Handle("/metrics", s.metricsAuth(promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{})))
	var selfKey [32]byte
	if s.self != nil && s.tlsCert != nil && s.tlsCert.Leaf != nil {
		selfKey = tlsutil.KeyHash(s.tlsCert.Leaf)
	}
	eh := ehsm.New(s.svc, ehsm.Options{Replay: s.store, Metrics: s.metrics, MirrorStatus: s.cfg.EHSMMirrorStatus, Attestation: s.attest, BindNonce: s.cfg.EHSMBindNonce, Self: s.self, SelfTLSKeyHash: selfKey, Secrets: s.secrets})
	mux.Handle("/ehsm", eh)
	mux.Handle("/ehsm/", eh)
	mux.Handle("/v1/", native.New(native.Config{KMS: s.svc, Root: s.root, Metrics: s.metrics, Attestation: s.attest}))
	as := bigdlas.New(s.svc, s.attest, s.metrics)
	for _, p := range bigdlas.Routes {
		mux.Handle(p, as)
	}
	bd := bigdlkms.New(s.svc, bigdlkms.Options{Metrics: s.metrics, Logger: s.log, DataKeyErrorBodies: s.cfg.BigDLDataKeyErrorBodies})
	for _, p := range bigdlkms.Routes {
		mux.Handle(p, bd)
	}
	mux.HandleFunc("/{$}", bd.ServeHTTP)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		native.WriteError(w, &fault.Error{Kind: fault.NotFound, Code: "unknown_route", Msg: fmt.Sprintf("no route %s %s: the APIs are /ehsm, /v1/, the BigDL KMS and AS routes, /healthz, /readyz and /metrics", r.Method, r.URL.Path)})
	})
	return s.recoverer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// BigDL's Scala client sends //dataKey/...; route it as /dataKey/...
		// without ServeMux's redirect.
		if p := httputil.CollapseSlashes(r.URL.Path); p != r.URL.Path {
			r2 := r.Clone(r.Context())
			r2.URL.Path, r2.URL.RawPath = p, ""
			r = r2
		}
		mux.ServeHTTP(w, r)
	}))
}

func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "path", r.URL.Path, "panic", fmt.Sprint(v))
				native.WriteError(w, &fault.Error{Kind: fault.Internal, Code: "internal", Msg: "Server internal error, please contact the administrator"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		native.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "store unreachable"})
		return
	}
	if s.svc.Sealed() {
		native.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "sealed"})
		return
	}
	native.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// Listen opens the configured listeners.
func (s *Server) Listen() ([]net.Listener, error) {
	var ls []net.Listener
	for i, addr := range []string{s.cfg.Addr, s.cfg.BigDLKMSAddr, s.cfg.BigDLASAddr} {
		if addr == "" {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, o := range ls {
				o.Close()
			}
			return nil, fmt.Errorf("listening on %s: %w", addr, err)
		}
		if i == 2 {
			l = ASListener{l}
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// ASListener marks the BigDL AS listener: there GET / answers the BigDL
// Remote Attestation Service banner (BigDL's check-service.sh greps for it)
// instead of the BigDL KMS one; every other route is the same.
type ASListener struct{ net.Listener }

// Serve serves on the listeners until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, listeners ...net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	var conns connStates
	srv.ConnState = conns.track
	if s.tlsCert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*s.tlsCert}, MinVersion: tls.VersionTLS12}
	}
	asSrv := &http.Server{
		Handler:           bigdlas.BannerHandler(s.handler),
		ReadHeaderTimeout: srv.ReadHeaderTimeout, ReadTimeout: srv.ReadTimeout, WriteTimeout: srv.WriteTimeout,
		IdleTimeout: srv.IdleTimeout, ErrorLog: srv.ErrorLog, TLSConfig: srv.TLSConfig, ConnState: conns.track,
	}
	errc := make(chan error, len(listeners))
	for _, l := range listeners {
		hs := srv
		if _, ok := l.(ASListener); ok {
			hs = asSrv
		}
		scheme := "https"
		if s.tlsCert == nil {
			scheme = "http"
		}
		s.log.Info("listening", "url", scheme+"://"+l.Addr().String())
		go func(l net.Listener) {
			var err error
			if s.tlsCert != nil {
				err = hs.ServeTLS(l, "", "")
			} else {
				err = hs.Serve(l)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}(l)
	}
	go s.housekeeping(ctx)
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	err := shutdown(&conns, 10*time.Second, srv, asSrv)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil // closed by shutdown once idle
	}
	return err
}

// housekeeping destroys keys whose deletion date passed and forgets replay
// records older than the replay window.
func (s *Server) housekeeping(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		if !s.svc.Sealed() {
			if ids, err := s.svc.DestroyDueKeys(ctx); err != nil {
				s.log.Error("destroying keys due for deletion", "err", err)
			} else if len(ids) > 0 {
				s.log.Info("destroyed keys whose scheduled deletion date passed", "count", len(ids))
			}
			if _, err := s.secrets.DestroyDue(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("destroying secrets due for deletion", "err", err)
			}
		}
		if err := s.store.PurgeRequests(ctx, s.svc.Now().Add(-ehsm.ReplayRetention)); err != nil && ctx.Err() == nil {
			s.log.Error("purging replay records", "err", err)
		}
		if err := s.attest.Purge(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("purging expired attestation nonces", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close releases the store and audit log.
func (s *Server) Close() {
	if s.store != nil {
		s.store.Close()
	}
	s.audit.Close()
}
