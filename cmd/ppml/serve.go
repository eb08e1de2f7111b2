package main

import (
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/server"
)

func defaultDataDir() string {
	if d := os.Getenv("PPML_DATA_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "ppml")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "ppml")
	}
	return "ppml-data"
}

// serverGCPercent is the garbage collector's target for ppml serve: every
// request allocates garbage over a small live heap, so with the default
// (100) the collector runs often under load; 400 measured ~10 % less
// server CPU per KMS request for ~15 MB more peak memory
// (docs/benchmarks.md). GOGC in the environment still decides.
const serverGCPercent = 400

func serverGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serverGCPercent)
	}
}

func newServeCmd() *cobra.Command {
	var cfg server.Config
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the KMS and the Attestation Service (eHSM, BigDL KMS/AS and native APIs) over HTTPS",
		Long: `Run the KMS. With no flags it keeps its state in the data directory (embedded
SQLite, a development root key, a self-signed TLS certificate and the admin
token) and listens on https://127.0.0.1:9000 for every API:
  /ehsm?Action=...                      eHSM-compatible
  /user, /primaryKey, /dataKey, /rootKey BigDL-KMS-compatible
  /enroll, /registerPolicy, /verifyQuote BigDL-AS-compatible
  /v1/...                               native API (attestation: /v1/attestation/...)
  /healthz, /readyz, /metrics

Attestation: Intel quotes are verified against the pinned Intel SGX Root CA
with collateral from --collateral, --collateral-dir or --pccs-url. Simulated
quotes (ppml sim) are refused unless --allow-simulation; then the simulation
PKI lives in <data-dir>/sim (created on first start; pass that directory as
--sim-dir to "ppml sim quote") and every simulated result and token says
simulated: true.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Logger = slog.Default()
			serverGC()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			srv, err := server.New(ctx, cfg)
			if err != nil {
				return err
			}
			defer srv.Close()
			ls, err := srv.Listen()
			if err != nil {
				return err
			}
			return srv.Serve(ctx, ls...)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:9000", "address of the main listener, serving every API")
	fs.StringVar(&cfg.BigDLKMSAddr, "bigdl-kms-addr", "", "optional extra listener for drop-in BigDL KMS use (BigDL's port is 9876), e.g. 0.0.0.0:9876")
	fs.StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "directory for state: SQLite store, root key, TLS certificate, admin token, audit log (env PPML_DATA_DIR)")
	fs.StringVar(&cfg.DB, "db", "", "store: a postgres://user@host:port/db URL for PostgreSQL, or a SQLite file path (default <data-dir>/ppml.db)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM server certificate (default: a self-signed one created in <data-dir>/tls)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.BoolVar(&cfg.InsecureHTTP, "insecure-http", false, "serve plain HTTP instead of HTTPS (never in production)")
	fs.StringVar(&cfg.RootKeyProvider, "root-key-provider", "file", "where the root key comes from: file (a base64 key file) or shamir (start sealed; unseal with 3 of 5 shares)")
	fs.StringVar(&cfg.RootKeyFile, "root-key-file", "", "base64 root key file for the file provider, e.g. a mounted Secret (default <data-dir>/root.key, created for development)")
	fs.BoolVar(&cfg.TLSInMemory, "tls-in-memory", false, "generate the TLS key at start in memory only (never written; inside an enclave the host never sees it) for --tls-dns; the self-quote binds its hash (RA-TLS)")
	fs.StringSliceVar(&cfg.TLSDNSNames, "tls-dns", []string{"localhost"}, "DNS names of the --tls-in-memory certificate")
	fs.StringVar(&cfg.AdminTokenSHA256, "admin-token-sha256", "", "SHA-256 (hex) of the admin token instead of --admin-token-file: the server never holds the token (in Gramine: measured in the manifest)")
	fs.StringVar(&cfg.MetricsTokenFile, "metrics-token-file", "", "file with a bearer token that /metrics then requires (Prometheus bearer_token_file, ServiceMonitor bearerTokenSecret); default: /metrics is open")
	fs.StringVar(&cfg.AdminTokenFile, "admin-token-file", "", "file with the admin token for enrollment and root key operations (default <data-dir>/admin.token, created)")
	fs.BoolVar(&cfg.OpenEnrollment, "open-enrollment", false, "let anyone enroll apps and BigDL users without the admin token (development only)")
	fs.DurationVar(&cfg.DeletionWindow, "deletion-window", 7*24*time.Hour, "default wait between DeleteKey and the destruction of the key (cancellable meanwhile)")
	fs.IntVar(&cfg.BigDLDataKeyBits, "bigdl-data-key-bits", 256, "size of BigDL KMS data keys: 256 (recommended) or 128 (upstream's size)")
	fs.BoolVar(&cfg.BigDLDataKeyErrorBodies, "bigdl-datakey-error-bodies", false, "DANGEROUS: answer a failing BigDL GET /dataKey with an error text as upstream does; BigDL's client ignores the status and encrypts data with that text as the key (default: reset the connection)")
	legacyFailClosed := true
	fs.BoolVar(&legacyFailClosed, "bigdl-legacy-fail-closed", true, "kept for old command lines: failing GET /dataKey now always resets the connection unless --bigdl-datakey-error-bodies")
	_ = fs.MarkDeprecated("bigdl-legacy-fail-closed", "it is the default now; --bigdl-datakey-error-bodies restores upstream's answer")
	fs.StringVar(&cfg.SelfAttestation, "self-attestation", "", "let clients attest this server with eHSM GenerateQuote (ATTESTATION_CHALLENGE): gramine (running inside Gramine) or simulated (with --allow-simulation); off by default")
	fs.BoolVar(&cfg.EHSMBindNonce, "ehsm-bind-nonce", false, "eHSM VerifyQuote: require the quote's report_data to start with SHA-256(decoded nonce), binding it to the request (BigDL's client always sends the nonce \"test\": leave this off for it)")
	fs.BoolVar(&cfg.EHSMMirrorStatus, "ehsm-http-status", false, "answer eHSM errors with the body code as HTTP status (upstream always answers 200)")
	fs.StringVar(&cfg.BigDLASAddr, "bigdl-as-addr", "", "optional extra listener for drop-in BigDL Remote Attestation Service use (BigDL's port is 9875), e.g. 0.0.0.0:9875")
	fs.BoolVar(&cfg.AllowSimulation, "allow-simulation", false, "accept simulated quotes, verified against the simulation root in --sim-dir (development only; results and tokens say simulated: true)")
	fs.BoolVar(&cfg.AllowDebugEnclaves, "allow-debug-enclaves", false, "accept debug enclaves and TDs on the BigDL AS and eHSM quote routes, whose policies cannot allow them (development on real SGX only: the host can read their memory; results say debug: true; native policies use allow_debug)")
	fs.StringVar(&cfg.SimDir, "sim-dir", "", "simulation PKI used with --allow-simulation (default <data-dir>/sim, created on first start)")
	fs.StringVar(&cfg.CollateralFile, "collateral", "", "DCAP collateral JSON file (offline layout) used for every Intel quote")
	fs.StringVar(&cfg.CollateralDir, "collateral-dir", "", "directory of DCAP collateral JSON files, chosen by TEE, FMSPC and PCK CA (read at start)")
	fs.StringVar(&cfg.PCCSURL, "pccs-url", "", "Intel PCS or PCCS v4 base URL to fetch collateral from, e.g. https://pccs:8081 (after --collateral-dir)")
	fs.StringVar(&cfg.PCCSAPIKey, "pccs-api-key", os.Getenv("PPML_PCCS_API_KEY"), "Intel PCS subscription key for --pccs-url (env PPML_PCCS_API_KEY)")
	fs.StringVar(&cfg.AuditLog, "audit-log", "", "audit log file, JSON lines (default <data-dir>/audit.log)")
	lim := server.DefaultLimits()
	cfg.Limits = lim
	fs.IntVar(&cfg.Limits.Argon.Global, "argon2-limit", lim.Argon.Global, "BigDL token checks (argon2id, 19 MiB and ~20 ms of a core each) in flight at once; default: half the cores")
	fs.IntVar(&cfg.Limits.Argon.PerCaller, "argon2-limit-per-user", lim.Argon.PerCaller, "of which for one BigDL user name (beyond: 429 too_many_in_flight)")
	fs.Float64Var(&cfg.Limits.Argon.Rate, "argon2-rate", lim.Argon.Rate, "BigDL token checks started per second, at most (a flood of made-up tokens then gets a bounded share of the CPU); default: 10 per core")
	fs.Float64Var(&cfg.Limits.Argon.PerCallerRate, "argon2-rate-per-user", lim.Argon.PerCallerRate, "BigDL token checks started per second for one user name, at most (guessing one user's token gets little CPU)")
	fs.DurationVar(&cfg.Limits.Argon.Wait, "argon2-wait", lim.Argon.Wait, "longest wait for a token check slot, then 503 busy with Retry-After (a token verified before needs no slot)")
	fs.IntVar(&cfg.Limits.RSA.Global, "rsa-limit", lim.RSA.Global, "RSA key generations (seconds of CPU for RSA-4096) in flight at once; default: half the cores, at least 2")
	fs.IntVar(&cfg.Limits.RSA.PerCaller, "rsa-limit-per-app", lim.RSA.PerCaller, "of which for one app (beyond: 429 too_many_in_flight)")
	fs.DurationVar(&cfg.Limits.RSA.Wait, "rsa-wait", lim.RSA.Wait, "longest wait for an RSA generation slot, then 503 busy (or 429 for an app over its share) with Retry-After")
	fs.IntVar(&cfg.Limits.PCCS.Global, "pccs-limit", lim.PCCS.Global, "collateral fetches from --pccs-url in flight at once (one per platform at a time; only for quotes whose own signatures verify)")
	fs.IntVar(&cfg.Limits.PCCS.PerCaller, "pccs-limit-per-app", lim.PCCS.PerCaller, "of which for one app")
	fs.DurationVar(&cfg.Limits.PCCS.Wait, "pccs-wait", lim.PCCS.Wait, "longest wait for a PCCS fetch slot, then 503 busy with Retry-After")
	fs.DurationVar(&cfg.Limits.PCCSNegativeTTL, "pccs-negative-ttl", lim.PCCSNegativeTTL, "how long a failed PCCS fetch is remembered: the platform's quotes are refused without asking the PCCS again until then")
	fs.DurationVar(&cfg.Limits.AuthFailureDelay, "auth-failure-delay", lim.AuthFailureDelay, "how long a refused authentication (wrong API key, token, signature, admin token) or a forged quote (bad format, PCK chain or signature) waits before its answer, so a client guessing or forging over a few connections gets few answers; negative: no wait")
	fs.StringVar(&cfg.AuditSync, "audit-sync", "batch", "when audit records reach the disk: always (fsync before answering) or batch (fsync every 200ms); a request whose record cannot be written fails")
	return cmd
}
