// Package agent is the in-enclave attestation client, the Go replacement for
// BigDL's attestation.sh + AttestationCLI: it obtains a quote over fresh
// report data, has it verified by the chosen attestation service, prints
// upstream's verdict lines with upstream's exit codes, and, with our native
// service, receives the data keys it asked for (HPKE-sealed to a key that
// never leaves the enclave) and delivers them only on success.
package agent

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/client/kmskeys"
	"github.com/ppml-project/ppml/dataformat/bigdl"
	"github.com/ppml-project/ppml/dataformat/stream"
	"github.com/ppml-project/ppml/enclave"
	"github.com/ppml-project/ppml/internal/atomicfile"
	"github.com/ppml-project/ppml/quote/verify"
	"github.com/ppml-project/ppml/wire/release"
	"github.com/ppml-project/ppml/wire/token"
)

// Attestation service types (ATTESTATION_TYPE).
const (
	TypeEHSM   = "EHSMAttestationService"
	TypeBigDL  = "BigDLRemoteAttestationService"
	TypeNative = "PPMLAttestationService"
)

// Verdict lines (bigdl-attestation-protocol.md §6.3): scripts grep for them.
const (
	LineSuccess   = "Attestation Success!"
	LineFail      = "Attestation Fail! Application killed!"
	LineDebugFail = "ERROR:Attestation Fail! In debug mode, continue."
	lineEHSMWarn  = "warning: Attestation pass but BIOS or the software is out of date. Result=%d"
	lineBigDLWarn = "WARNING: Attestation pass but BIOS or the software is out of date."
)

// DataKey asks for one data key: Wrapped is a file holding a wrapped data
// key as our KMS returns it (base64 or raw; the key id travels inside) or a
// BigDL .meta; Dest is a file path, gramine:NAME, gramine-legacy:NAME (BigDL's
// encrypted-fsd key derivation, for existing volumes) or env:NAME.
type DataKey struct {
	Wrapped string
	Dest    string
}

// Config is the environment contract plus flags.
type Config struct {
	URL            string // ATTESTATION_URL: host:port (https assumed) or a URL
	AppID, APIKey  string
	PolicyID       string
	Type           string // TypeEHSM (default), TypeBigDL, TypeNative
	QuoteType      string // gramine (default), occlum, TDX
	Debug          bool   // ATTESTATION_DEBUG: continue after a failure (never releases keys)
	UserReportData string // legacy services: the -p string (1..32 bytes)
	AttestationDir string // Gramine's /dev/attestation, or a simulated enclave directory
	TSMDir         string // TDX configfs-tsm report directory
	CAFile         string
	DataKeys       []DataKey
	DataKeyAAD     []byte // AAD of the wrapped data keys (default: BigDL's "test")
	Quoter         enclave.Quoter
	// Server, when set, attests the attestation service first (BigDL's
	// ATTESTATION_CHALLENGE): nothing is sent to a service that fails.
	Server         *ServerCheck
	Stdout, Stderr io.Writer
}

// Result is the outcome.
type Result struct {
	ExitCode int
	Env      []string // NAME=VALUE for env: destinations
	Passed   bool
}

// typeSpellings maps every ATTESTATION_TYPE value upstream images and CLIs
// set (case-insensitive) to ours: the Scala AttestationCLI's class names,
// the Python attestation_cli.py's "BigDL" (its default), and our own.
var typeSpellings = map[string]string{
	"":                              TypeEHSM, // AttestationCLI's default
	"ehsmattestationservice":        TypeEHSM,
	"ehsm":                          TypeEHSM,
	"bigdlremoteattestationservice": TypeBigDL,
	"bigdlattestationservice":       TypeBigDL,
	"bigdl":                         TypeBigDL, // attestation_cli.py
	"ppmlattestationservice":        TypeNative,
	"ppml":                          TypeNative,
	"native":                        TypeNative,
}

// unsupportedTypes are upstream service types ppml does not speak, with why.
var unsupportedTypes = map[string]string{
	"dummyattestationservice": "it accepts every quote, so attesting against it proves nothing",
	"dummy":                   "it accepts every quote, so attesting against it proves nothing",
	"azureattestationservice": "Microsoft Azure Attestation is not implemented",
	"azure":                   "Microsoft Azure Attestation is not implemented",
	"amberattestationservice": "Intel Trust Authority (Amber) is not implemented",
	"amber":                   "Intel Trust Authority (Amber) is not implemented",
}

func canonicalType(v string) (string, error) {
	k := strings.ToLower(strings.TrimSpace(v))
	if t, ok := typeSpellings[k]; ok {
		return t, nil
	}
	if why, ok := unsupportedTypes[k]; ok {
		return "", fmt.Errorf("ATTESTATION_TYPE %q is not supported: %s; use %s, %s (or BigDL) or %s", v, why, TypeEHSM, TypeBigDL, TypeNative)
	}
	return "", fmt.Errorf("ATTESTATION_TYPE %q is not supported: use %s, %s (or BigDL) or %s (any case)", v, TypeEHSM, TypeBigDL, TypeNative)
}

// canonicalQuoteType accepts the Scala CLI's gramine/occlum/TDX and the
// Python CLI's Gramine/Occlum/TDX in any case; unset is gramine, the Scala
// CLI's default (TDX with ATTESTATION_TYPE=BigDL, the Python CLI's).
func canonicalQuoteType(v string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "gramine":
		return "gramine", nil
	case "occlum":
		return "occlum", nil
	case "tdx":
		return "TDX", nil
	}
	return "", fmt.Errorf("QUOTE_TYPE %q is not supported: use gramine, occlum or TDX (any case)", v)
}

// Skip tells whether the ATTESTATION variable (value, set) means no
// attestation, as BigDL's attestation.sh reads it: only "true" attests;
// unset or any other value skips it. warning is the line to print when it
// is skipped.
func Skip(value string, set bool) (skip bool, warning string) {
	switch {
	case value == "true":
		return false, ""
	case !set || value == "":
		return true, "[WARN] ATTESTATION is unset: attestation skipped, as BigDL's attestation.sh does; set ATTESTATION=true to attest (no data key is released without it)"
	}
	return true, fmt.Sprintf("[WARN] ATTESTATION=%s: attestation skipped (only ATTESTATION=true attests, as in BigDL's attestation.sh); no data key is released", value)
}

// Normalize fills defaults and validates.
func (c *Config) Normalize() error {
	// attestation_cli.py, the only CLI spelling "BigDL", defaults to TDX quotes.
	if strings.EqualFold(strings.TrimSpace(c.Type), "bigdl") && strings.TrimSpace(c.QuoteType) == "" {
		c.QuoteType = "TDX"
	}
	t, err := canonicalType(c.Type)
	if err != nil {
		return err
	}
	c.Type = t
	if c.QuoteType, err = canonicalQuoteType(c.QuoteType); err != nil {
		return err
	}
	for name, v := range map[string]string{"ATTESTATION_URL": c.URL, "APP_ID": c.AppID, "API_KEY": c.APIKey} {
		if v == "" {
			return fmt.Errorf("Attestation is enabled, but %s is empty!", name)
		}
	}
	if !strings.Contains(c.URL, "://") {
		c.URL = "https://" + c.URL
	}
	if c.Server != nil && c.Type == TypeBigDL {
		return fmt.Errorf("ATTESTATION_CHALLENGE needs %s or %s: the BigDL AS cannot quote itself", TypeEHSM, TypeNative)
	}
	if len(c.DataKeys) > 0 && c.Type != TypeNative {
		return fmt.Errorf("--data-key needs ATTESTATION_TYPE=%s: only our native service releases keys to attested workloads", TypeNative)
	}
	for _, d := range c.DataKeys {
		if d.Wrapped == "" || d.Dest == "" {
			return fmt.Errorf("--data-key %q: want WRAPPED=DEST", d.Wrapped+"="+d.Dest)
		}
	}
	if c.UserReportData == "" {
		c.UserReportData = "010203040506"
	}
	if c.DataKeyAAD == nil {
		c.DataKeyAAD, _ = base64.StdEncoding.DecodeString(kmskeys.BigDLAAD)
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.Stderr == nil {
		c.Stderr = os.Stderr
	}
	return nil
}

func (c *Config) quoter() (enclave.Quoter, error) {
	if c.Quoter != nil {
		return c.Quoter, nil
	}
	switch c.QuoteType {
	case "occlum":
		return enclave.Occlum("")
	case "TDX":
		return enclave.TDX(c.TSMDir)
	}
	return enclave.Gramine(c.AttestationDir)
}

// Run attests and returns the exit code upstream's CLI would use.
func Run(ctx context.Context, c Config) Result {
	if err := c.Normalize(); err != nil {
		if c.Stdout == nil {
			c.Stdout, c.Stderr = os.Stdout, os.Stderr
		}
		fmt.Fprintf(c.Stdout, "[ERROR] %v\n[INFO] PPML Application Exit!\n", err)
		return Result{ExitCode: 1}
	}
	env, warning, err := attest(ctx, &c)
	if err != nil {
		fmt.Fprintf(c.Stderr, "attestation failed: %v\n", err)
		if c.Debug {
			fmt.Fprintln(c.Stderr, "WARNING: ATTESTATION_DEBUG=true: the workload continues after a FAILED attestation; no key was released. Never use this in production.")
			fmt.Fprintln(c.Stdout, LineDebugFail)
			return Result{ExitCode: 0}
		}
		fmt.Fprintln(c.Stdout, LineFail)
		return Result{ExitCode: 1}
	}
	if warning != "" {
		fmt.Fprintln(c.Stdout, warning)
	}
	fmt.Fprintln(c.Stdout, LineSuccess)
	return Result{ExitCode: 0, Env: env, Passed: true}
}

func attest(ctx context.Context, c *Config) (env []string, warning string, err error) {
	q, err := c.quoter()
	if err != nil {
		return nil, "", err
	}
	if q.Simulated() {
		fmt.Fprintf(c.Stderr, "[SIMULATION] quotes come from the %s: nothing here is hardware-backed\n", q.Describe())
	}
	cfg := client.Config{URL: c.URL, AppID: c.AppID, APIKey: c.APIKey, CAFile: c.CAFile}
	if c.Server != nil {
		pin, hc, err := pinningClient(c.CAFile)
		if err != nil {
			return nil, "", err
		}
		cfg.HTTP = hc
		e, err := client.NewEHSM(cfg)
		if err != nil {
			return nil, "", err
		}
		r, err := c.Server.Run(ctx, e)
		if err != nil {
			return nil, "", fmt.Errorf("the attestation service itself failed attestation: %w", err)
		}
		bound, err := pin.bind(r)
		if err != nil {
			return nil, "", fmt.Errorf("the attestation service itself failed attestation: %w", err)
		}
		if bound {
			fmt.Fprintf(c.Stderr, "[INFO] the attestation service's quote binds the TLS key of this connection (RA-TLS); later requests must use the same key\n")
		} else {
			fmt.Fprintf(c.Stderr, "[WARN] the attestation service's quote does not bind its TLS key (a server without --tls-in-memory): whoever holds that key outside the enclave could relay the quote\n")
		}
		sim := ""
		if r.Simulated {
			sim = " (SIMULATED)"
		}
		fmt.Fprintf(c.Stderr, "[INFO] the attestation service attested itself%s: %s, mr_enclave %s, tcb %s\n", sim, r.TEE, r.MREnclave, tcbOf(r))
	}
	switch c.Type {
	case TypeNative:
		env, err := attestNative(ctx, c, cfg, q)
		return env, "", err
	case TypeBigDL:
		w, err := attestBigDL(ctx, c, cfg, q)
		return nil, w, err
	default:
		w, err := attestEHSM(ctx, c, cfg, q)
		return nil, w, err
	}
}

// legacyReportData is the -p string, zero-padded; legacy services bind no nonce.
func legacyReportData(s string, tdx bool) ([64]byte, error) {
	var rd [64]byte
	max := 32
	if tdx {
		max = 64
	}
	if len(s) < 1 || len(s) > max {
		return rd, fmt.Errorf("user report data must be 1..%d bytes (got %d)", max, len(s))
	}
	copy(rd[:], s)
	return rd, nil
}

func attestNative(ctx context.Context, c *Config, cfg client.Config, q enclave.Quoter) ([]string, error) {
	// Read every wrapped key first: a typo fails before anything is asked.
	wrapped := make([][]byte, len(c.DataKeys))
	for i, d := range c.DataKeys {
		var err error
		if wrapped[i], err = readWrapped(d.Wrapped); err != nil {
			return nil, err
		}
	}
	s, err := NewSession(cfg, q, c.PolicyID, c.Stderr)
	if err != nil {
		return nil, err
	}
	// Release everything before delivering anything: all or nothing.
	keys := make([][]byte, len(c.DataKeys))
	for i, d := range c.DataKeys {
		if i == 0 {
			// The first release carries the attestation itself; a token is
			// asked for only when more keys follow.
			keys[i], err = s.AttestAndRelease(ctx, wrapped[i], c.DataKeyAAD, len(c.DataKeys) > 1)
		} else {
			keys[i], err = s.Release(ctx, wrapped[i], c.DataKeyAAD)
		}
		if err != nil {
			return nil, fmt.Errorf("release of %s: %w", d.Wrapped, err)
		}
	}
	if len(c.DataKeys) == 0 {
		if err := s.Attest(ctx); err != nil {
			return nil, err
		}
	}
	var env []string
	for i, d := range c.DataKeys {
		e, err := deliver(c, d.Dest, keys[i])
		if err != nil {
			return nil, err
		}
		env = append(env, e...)
	}
	return env, nil
}

// Session is one attestation with our native service: an ephemeral X25519
// key whose public half the quote commits to, and the token that proves it.
// Released keys are HPKE-sealed to that key and open only here.
type Session struct {
	as       *client.Attestation
	kms      *client.Native
	quoter   enclave.Quoter
	policyID string
	log      io.Writer

	priv    *ecdh.PrivateKey
	token   string
	expires time.Time
}

// NewSession prepares a session; nothing is sent until Attest.
func NewSession(cfg client.Config, q enclave.Quoter, policyID string, log io.Writer) (*Session, error) {
	// One HTTP client for attestation and release: the release reuses the
	// attestation's connection instead of a second TLS handshake.
	if cfg.HTTP == nil {
		h, err := client.HTTPClient(cfg.CAFile, 0)
		if err != nil {
			return nil, err
		}
		cfg.HTTP = h
	}
	as, err := client.NewAttestation(cfg)
	if err != nil {
		return nil, err
	}
	n, err := client.NewNative(cfg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = io.Discard
	}
	return &Session{as: as, kms: n, quoter: q, policyID: policyID, log: log}, nil
}

// Attest gets a nonce, a quote over SHA-256(nonce || X25519 public key) and
// a token for it.
func (s *Session) Attest(ctx context.Context) error {
	priv, ev, err := s.evidence(ctx)
	if err != nil {
		return err
	}
	res, err := s.as.Verify(ctx, client.VerifyRequest{Quote: ev.Quote, Nonce: ev.Nonce, RuntimeData: priv.PublicKey().Bytes(), PolicyID: s.policyID})
	if err != nil {
		return err
	}
	s.accepted(priv, res.Token, res.Claims)
	return nil
}

// AttestAndRelease attests within the release of one wrapped data key (one
// round trip after the nonce, no token), and keeps a token for later
// releases when wantToken.
func (s *Session) AttestAndRelease(ctx context.Context, wrapped, aad []byte, wantToken bool) ([]byte, error) {
	keyID, err := wrappedKeyID(wrapped)
	if err != nil {
		return nil, err
	}
	priv, ev, err := s.evidence(ctx)
	if err != nil {
		return nil, err
	}
	ev.IssueToken = wantToken
	res, err := s.kms.ReleaseAttested(ctx, keyID, wrapped, aad, ev, priv.PublicKey().Bytes())
	if err != nil {
		return nil, err
	}
	s.accepted(priv, res.Token, res.Claims)
	return release.Open(priv, keyID, res.Sealed)
}

// evidence gets a nonce and a quote over SHA-256(nonce || the public half
// of a new X25519 key).
func (s *Session) evidence(ctx context.Context) (*ecdh.PrivateKey, client.ReleaseEvidence, error) {
	nonce, err := s.as.Nonce(ctx)
	if err != nil {
		return nil, client.ReleaseEvidence{}, fmt.Errorf("getting a nonce: %w", err)
	}
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, client.ReleaseEvidence{}, err
	}
	var rd [64]byte
	h := sha256.Sum256(append(append([]byte{}, nonce.Nonce...), priv.PublicKey().Bytes()...))
	copy(rd[:], h[:])
	quote, err := s.quoter.Quote(rd)
	if err != nil {
		return nil, client.ReleaseEvidence{}, fmt.Errorf("getting a quote from %s: %w", s.quoter.Describe(), err)
	}
	return priv, client.ReleaseEvidence{Quote: quote, Nonce: nonce.Nonce, PolicyID: s.policyID}, nil
}

// accepted keeps what an accepted attestation gave: the key the releases
// are sealed to and the token for later releases, if one was issued (an
// earlier token commits to an earlier key: it goes).
func (s *Session) accepted(priv *ecdh.PrivateKey, tok string, claims token.Claims) {
	if claims.Simulated {
		fmt.Fprintln(s.log, "[SIMULATION] the attestation service marked this result simulated: true")
	}
	s.priv, s.token, s.expires = priv, tok, time.Time{}
	if tok != "" {
		s.expires = claims.Expires()
	}
}

// Release returns the plaintext of a wrapped data key made under a bound
// key, attesting again first if the token is about to expire.
func (s *Session) Release(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	if s.token == "" || time.Until(s.expires) < 30*time.Second {
		if err := s.Attest(ctx); err != nil {
			return nil, err
		}
	}
	keyID, err := wrappedKeyID(wrapped)
	if err != nil {
		return nil, err
	}
	sealed, err := s.kms.Release(ctx, keyID, wrapped, aad, s.token, s.priv.PublicKey().Bytes())
	if err != nil {
		return nil, err
	}
	return release.Open(s.priv, keyID, sealed)
}

func wrappedKeyID(wrapped []byte) (string, error) {
	keyID := kmskeys.KeyIDOf(base64.StdEncoding.EncodeToString(wrapped))
	if keyID == "" {
		return "", fmt.Errorf("the wrapped data key was not made by this KMS (no key id inside)")
	}
	return keyID, nil
}

// readWrapped reads a wrapped data key: a file with the base64 text or raw
// bytes of our KMS ciphertext, a BigDL .meta naming one, or an encrypted file
// (ppml format, or BigDL .cbc) whose header carries it.
func readWrapped(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--data-key: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("--data-key: %w", err)
	}
	switch {
	case stream.IsEncrypted(b):
		h, err := stream.ReadHeader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("--data-key %s: %w", path, err)
		}
		b = []byte(h.WrappedKey)
	case bigdl.LooksLikeHeader(b):
		h, err := bigdl.ParseHeader(b[:bigdl.HeaderSize])
		if err != nil {
			return nil, fmt.Errorf("--data-key %s: %w", path, err)
		}
		b = []byte(h.EncryptedDataKey)
	}
	text := strings.TrimSpace(string(b))
	if strings.HasPrefix(text, "{") {
		if text, err = bigdl.ParseMeta(b); err != nil {
			return nil, fmt.Errorf("--data-key %s: %w", path, err)
		}
	}
	if raw, err := base64.StdEncoding.DecodeString(text); err == nil && kmskeys.KeyIDOf(text) != "" {
		return raw, nil
	}
	if enc := base64.StdEncoding.EncodeToString(b); kmskeys.KeyIDOf(enc) != "" {
		return b, nil
	}
	return nil, fmt.Errorf("--data-key %s holds no wrapped data key of this KMS (want the base64 ciphertext of GenerateDataKey, the raw bytes, or a .meta naming one)", path)
}

// deliver hands a released key to the workload; it returns env entries.
func deliver(c *Config, dest string, key []byte) ([]string, error) {
	text := base64.StdEncoding.EncodeToString(key)
	switch {
	case strings.HasPrefix(dest, "env:"):
		name := strings.TrimPrefix(dest, "env:")
		if name == "" || strings.ContainsAny(name, "= \t\n") {
			return nil, fmt.Errorf("--data-key destination %q: env:NAME needs a valid variable name", dest)
		}
		return []string{name + "=" + text}, nil
	case strings.HasPrefix(dest, "gramine:"):
		return nil, enclave.DeliverGramineKey(c.AttestationDir, strings.TrimPrefix(dest, "gramine:"), key)
	case strings.HasPrefix(dest, "gramine-legacy:"):
		// BigDL's encrypted-fsd.sh key for existing volumes: the first 15
		// characters of the data-key string and a newline (90 bits at most;
		// bigdl-attestation-protocol.md §7.3). Only to open old volumes.
		if len(text) < 15 {
			return nil, fmt.Errorf("%s needs a data key whose text has at least 15 characters", dest)
		}
		fmt.Fprintf(c.Stderr, "WARNING: %s uses BigDL's legacy 15-character key derivation (at most 90 bits): use gramine:NAME with a 16-byte data key for new volumes\n", dest)
		return nil, enclave.DeliverGramineKey(c.AttestationDir, strings.TrimPrefix(dest, "gramine-legacy:"), append([]byte(text[:15]), '\n'))
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o700); err != nil {
		return nil, err
	}
	return nil, atomicfile.WriteFile(dest, []byte(text), 0o600)
}

func tcbOf(r *verify.Result) string {
	if r.TCBStatus == nil {
		return "unknown"
	}
	return *r.TCBStatus
}
