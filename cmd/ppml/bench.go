package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/bench"
	"github.com/ppml-project/ppml/client"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Load generators for the services"}
	cmd.AddCommand(newBenchKMSCmd(), newBenchReleaseCmd(), newBenchFloodCmd())
	return cmd
}

func newBenchKMSCmd() *cobra.Command {
	var f clientFlags
	var tokenFile, levels, vaultURL, vaultTokenFile string
	var duration time.Duration
	var serverPID int
	cmd := &cobra.Command{
		Use:   "kms",
		Short: "Measure GenerateDataKeyWithoutPlaintext and Decrypt through the eHSM API (ops/s, p50, p99)",
		Long: `Run GenerateDataKeyWithoutPlaintext and Decrypt through the eHSM API over
HTTPS with keep-alive at each concurrency level and print ops/s and latency
percentiles, and the CPU time per operation of this process and, with
--server-pid, of the server process on this machine. Without an app id and API key it enrolls a fresh app with the admin token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			conc, err := bench.ParseLevels(levels)
			if err != nil {
				return fmt.Errorf("--concurrency %q: %w", levels, err)
			}
			if cfg.HTTP, err = client.HTTPClient(cfg.CAFile, 128); err != nil {
				return err
			}
			var rep bench.KMSReport
			if vaultURL != "" {
				tok, err := os.ReadFile(vaultTokenFile)
				if err != nil {
					return fmt.Errorf("--vault needs --vault-token-file: %w", err)
				}
				v := bench.Vault{URL: vaultURL, Token: strings.TrimSpace(string(tok)), HTTP: cfg.HTTP, Levels: conc, Duration: duration, ServerPID: serverPID}
				rep, err = v.Run(cmd.Context())
			} else {
				cfg.AdminToken = client.ReadAdminTokenFile(tokenFile)
				rep, err = bench.KMS{Client: cfg, Levels: conc, Duration: duration, ServerPID: serverPID}.Run(cmd.Context())
			}
			if err != nil {
				return err
			}
			return f.print(cmd.OutOrStdout(), rep.Results, rep.WriteText)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&vaultURL, "vault", "", "measure this Vault/OpenBao transit engine instead (reference peer, e.g. https://127.0.0.1:8200): datakey/wrapped and decrypt")
	cmd.Flags().StringVar(&vaultTokenFile, "vault-token-file", "", "file holding the Vault token for --vault")
	adminTokenFlag(cmd, &tokenFile)
	cmd.Flags().StringVar(&levels, "concurrency", "1,16,64", "comma-separated concurrency levels")
	cmd.Flags().DurationVar(&duration, "duration", 10*time.Second, "duration of each measurement")
	cmd.Flags().IntVar(&serverPID, "server-pid", 0, "process id of the server on this machine: report its CPU time per operation too (Linux /proc)")
	return cmd
}

func newBenchReleaseCmd() *cobra.Command {
	var f clientFlags
	var tokenFile, simDir string
	var duration time.Duration
	var concurrency int
	cmd := &cobra.Command{
		Use:   "release --sim-dir DIR",
		Short: "Measure attest + key release latency (nonce, simulated quote, verify, HPKE release) against ppml serve --allow-simulation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			if simDir == "" {
				return fmt.Errorf("--sim-dir is required: <data-dir>/sim of a server started with --allow-simulation")
			}
			cfg.AdminToken = client.ReadAdminTokenFile(tokenFile)
			rep, err := bench.Release{Client: cfg, SimDir: simDir, Concurrency: concurrency, Duration: duration}.Run(cmd.Context())
			if err != nil {
				return err
			}
			return f.print(cmd.OutOrStdout(), rep.Result, rep.WriteText)
		},
	}
	f.register(cmd)
	adminTokenFlag(cmd, &tokenFile)
	cmd.Flags().StringVar(&simDir, "sim-dir", "", "simulation PKI of the server (<data-dir>/sim)")
	cmd.Flags().DurationVar(&duration, "duration", 10*time.Second, "measurement duration")
	cmd.Flags().IntVar(&concurrency, "concurrency", 1, "concurrent workloads")
	return cmd
}

func newBenchFloodCmd() *cobra.Command {
	var f clientFlags
	var tokenFile, quoteFile string
	var duration time.Duration
	var concurrency, flooders int
	var kinds []string
	cmd := &cobra.Command{
		Use:   "flood",
		Short: "Time authenticated requests (eHSM Decrypt, BigDL GET /dataKey) without and with a flood of made-up BigDL tokens and forged quotes; report both p99s",
		Long: `Enroll two apps and a BigDL user (admin token), then time eHSM Decrypt and
BigDL GET /dataKey with the genuine credentials for --duration, first alone,
then while --flooders goroutines send --flood requests: BigDL requests with
made-up users and tokens, and --quote with a random FMSPC forged into its PCK
certificate to BigDL AS /verifyQuote (from a made-up app id, or from an
enrolled app). Prints ops/s, p50, p99 of both runs,
the p99 ratio and what the flood was answered.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			if cfg.HTTP, err = client.HTTPClient(cfg.CAFile, 256); err != nil {
				return err
			}
			cfg.AdminToken = client.ReadAdminTokenFile(tokenFile)
			fl := bench.Flood{Client: cfg, Concurrency: concurrency, Flooders: flooders, Duration: duration, Kinds: kinds}
			if quoteFile != "" {
				if fl.Quote, err = os.ReadFile(quoteFile); err != nil {
					return fmt.Errorf("--quote: %w", err)
				}
			}
			rep, err := fl.Run(cmd.Context())
			if err != nil {
				return err
			}
			return f.print(cmd.OutOrStdout(), rep, rep.WriteText)
		},
	}
	f.register(cmd)
	adminTokenFlag(cmd, &tokenFile)
	cmd.Flags().StringVar(&quoteFile, "quote", "", "a genuine DCAP quote file to forge from (e.g. quote/testdata/dcap/sgx-phala/quote.bin); default: the flood is tokens only")
	cmd.Flags().DurationVar(&duration, "duration", 10*time.Second, "duration of each run")
	cmd.Flags().IntVar(&concurrency, "concurrency", 4, "concurrent authenticated requests per operation")
	cmd.Flags().IntVar(&flooders, "flooders", 64, "goroutines sending the flood")
	cmd.Flags().StringSliceVar(&kinds, "flood", []string{"tokens", "quotes"}, "what the flood sends, in turn: tokens (BigDL requests with made-up users and tokens), user-tokens (made-up tokens for the timed BigDL user), quotes (forged --quote from a made-up app id), tenant-quotes (forged --quote from an enrolled app)")
	return cmd
}
