package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/client"
)

var logFormat, logLevel, cpuProfile string

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "ppml",
		Short: "Privacy-preserving big data and AI on Kubernetes: KMS, attestation, encrypted data, cluster tooling",
		Long: `ppml runs a Key Management Service and an Attestation Service that BigDL and
eHSM clients talk to unchanged, and the tools around them.

Start here:  ppml serve          (KMS on https://127.0.0.1:9000, embedded store)`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := setupLogging(cmd.ErrOrStderr()); err != nil {
				return err
			}
			return startCPUProfile(cpuProfile)
		},
	}
	root.PersistentFlags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile of the whole command (e.g. serve until it stops) to this file (0600), for `go tool pprof`")
	for _, c := range commands {
		root.AddCommand(c())
	}
	return root
}

// commands is the one table of ppml's top-level commands (help lists them
// sorted by name). Commands that need cgo have stand-ins in nocgo.go.
var commands = []func() *cobra.Command{
	newServeCmd,      // the KMS and Attestation Service
	newEnrollCmd,     // client: enroll an app
	newKeyCmd,        // client: KMS primary keys
	newPolicyCmd,     // client: attestation policies
	newEncryptCmd,    // data: encrypt files
	newDecryptCmd,    // data: decrypt files
	newSQLCmd,        // data: SQL over encrypted inputs (cgo)
	newAttestCmd,     // in the enclave: attest, receive keys, run the workload
	newOperatorCmd,   // root key operations, offline import
	newAuditCmd,      // verify the audit log
	newQuoteCmd,      // inspect and verify DCAP quotes
	newSimCmd,        // simulated SGX/TDX platform
	newEnclaveCmd,    // enclave signing key
	newTLSCmd,        // TLS material (ssl-keys)
	newKeysAliasCmd,  // hidden: the old name of tls
	newPasswordCmd,   // password material (ssl-password, spark-secret)
	newK8sCmd,        // namespace setup, KMS/AS manifests
	newDoctorCmd,     // prerequisite checks
	newSubmitCmd,     // Spark submission
	newBenchCmd,      // load generators
	newQuickstartCmd, // the whole workflow on this machine (cgo)
}

func setupLogging(w io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch logFormat {
	case "text":
		slog.SetDefault(slog.New(slog.NewTextHandler(w, opts)))
	case "json":
		slog.SetDefault(slog.New(slog.NewJSONHandler(w, opts)))
	default:
		return fmt.Errorf("--log-format %q: want text or json", logFormat)
	}
	return nil
}

// clientFlags is the convention every client command shares.
type clientFlags struct {
	kms, appID, apiKey, apiKeyFile, caFile string
	outputFlag
}

func (f *clientFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.kms, "kms", os.Getenv("PPML_KMS"), "KMS URL, e.g. https://127.0.0.1:9000 (env PPML_KMS)")
	fs.StringVar(&f.appID, "app-id", os.Getenv("PPML_APP_ID"), "app id from enrollment (env PPML_APP_ID)")
	fs.StringVar(&f.apiKey, "api-key", "", "API key; prefer --api-key-file or PPML_API_KEY, since arguments are visible to other local users")
	fs.StringVar(&f.apiKeyFile, "api-key-file", "", "file holding the API key (env PPML_API_KEY holds the key itself)")
	fs.StringVar(&f.caFile, "ca-file", os.Getenv("PPML_CA_FILE"), "PEM CA certificate(s) to trust besides the system roots, e.g. <data-dir>/tls/server.crt (env PPML_CA_FILE)")
	f.outputFlag.register(cmd)
}

func (f *clientFlags) config() (client.Config, error) {
	key := f.apiKey
	if key == "" && f.apiKeyFile != "" {
		b, err := os.ReadFile(f.apiKeyFile)
		if err != nil {
			return client.Config{}, fmt.Errorf("reading --api-key-file: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	if key == "" {
		key = os.Getenv("PPML_API_KEY")
	}
	return client.Config{URL: f.kms, AppID: f.appID, APIKey: key, CAFile: f.caFile}, nil
}

// kmsConfig is config for a command where --kms is one key source among
// others: the zero Config when no --kms is given.
func (f *clientFlags) kmsConfig() (client.Config, error) {
	if f.kms == "" {
		return client.Config{}, nil
	}
	return f.config()
}

func readTrimmed(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", what, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// stopCPUProfile ends the profile started by --cpu-profile; main calls it
// after the command returned, whatever its outcome.
var stopCPUProfile = func() {}

func startCPUProfile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("--cpu-profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("--cpu-profile: %w", err)
	}
	stopCPUProfile = func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "ppml: writing the CPU profile %s: %v\n", path, err)
		}
	}
	return nil
}
