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
	cmd.AddCommand(newBenchKMSCmd(), newBenchReleaseCmd())
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
