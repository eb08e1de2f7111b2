package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/internal/loadgen"
)

func newBenchKMSCmd() *cobra.Command {
	var f clientFlags
	var tokenFile, levels, vaultURL, vaultTokenFile string
	var duration time.Duration
	cmd := &cobra.Command{
		Use:   "kms",
		Short: "Measure GenerateDataKeyWithoutPlaintext and Decrypt through the eHSM API (ops/s, p50, p99)",
		Long: `Run GenerateDataKeyWithoutPlaintext and Decrypt through the eHSM API over
HTTPS with keep-alive at each concurrency level and print ops/s and latency
percentiles. Without an app id and API key it enrolls a fresh app with the admin token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			var conc []int
			for _, s := range strings.Split(levels, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil || n < 1 || n > 1024 {
					return fmt.Errorf("--concurrency %q: want a comma-separated list of 1..1024", levels)
				}
				conc = append(conc, n)
			}
			httpc, err := client.HTTPClient(cfg.CAFile, 128)
			if err != nil {
				return err
			}
			cfg.HTTP = httpc
			ctx := cmd.Context()
			if vaultURL != "" {
				tok, err := os.ReadFile(vaultTokenFile)
				if err != nil {
					return fmt.Errorf("--vault needs --vault-token-file: %w", err)
				}
				vt := &loadgen.VaultTransit{URL: vaultURL, Token: strings.TrimSpace(string(tok)), Key: "ppml-bench", HTTP: httpc}
				return benchVault(cmd, &f, vt, conc, duration)
			}
			if cfg.AppID == "" || cfg.APIKey == "" { // no complete credentials: a fresh benchmark app
				cfg.AdminToken = client.ReadAdminTokenFile(tokenFile)
				e, err := client.NewEHSM(cfg)
				if err != nil {
					return err
				}
				if cfg.AppID, cfg.APIKey, err = e.Enroll(ctx); err != nil {
					return fmt.Errorf("enrolling a benchmark app: %w", err)
				}
				cfg.AdminToken = ""
			}
			e, err := client.NewEHSM(cfg)
			if err != nil {
				return err
			}
			keyID, err := e.CreateKey(ctx, "EH_AES_GCM_256")
			if err != nil {
				return err
			}
			ct, err := e.GenerateDataKeyWithoutPlaintext(ctx, keyID, 32, "dGVzdA==")
			if err != nil {
				return err
			}
			var results []loadgen.Result
			for _, c := range conc {
				results = append(results,
					loadgen.Run(ctx, "GenerateDataKeyWithoutPlaintext", c, duration, 0, func(ctx context.Context) error {
						_, err := e.GenerateDataKeyWithoutPlaintext(ctx, keyID, 32, "dGVzdA==")
						return err
					}),
					loadgen.Run(ctx, "Decrypt", c, duration, 0, func(ctx context.Context) error {
						_, err := e.Decrypt(ctx, keyID, ct, "dGVzdA==")
						return err
					}))
			}
			return printKMSBench(cmd, &f, results, duration, "eHSM API")
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&vaultURL, "vault", "", "measure this Vault/OpenBao transit engine instead (reference peer, e.g. https://127.0.0.1:8200): datakey/wrapped and decrypt")
	cmd.Flags().StringVar(&vaultTokenFile, "vault-token-file", "", "file holding the Vault token for --vault")
	adminTokenFlag(cmd, &tokenFile)
	cmd.Flags().StringVar(&levels, "concurrency", "1,16,64", "comma-separated concurrency levels")
	cmd.Flags().DurationVar(&duration, "duration", 10*time.Second, "duration of each measurement")
	return cmd
}

func printKMSBench(cmd *cobra.Command, f *clientFlags, results []loadgen.Result, duration time.Duration, api string) error {
	return f.print(cmd.OutOrStdout(), results, func(w io.Writer) {
		fmt.Fprintf(w, "client GOMAXPROCS=%d, %s per level, HTTPS keep-alive, %s\n", runtime.GOMAXPROCS(0), duration, api)
		fmt.Fprintf(w, "%-32s %5s %10s %10s %10s %7s\n", "operation", "conc", "ops/s", "p50", "p99", "errors")
		for _, r := range results {
			fmt.Fprintf(w, "%-32s %5d %10.0f %10s %10s %7d\n", r.Name, r.Concurrency, r.OpsPerSec,
				r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Errors)
			if r.FirstError != "" {
				fmt.Fprintf(w, "  first error: %s\n", r.FirstError)
			}
		}
	})
}

// benchVault runs the same levels against a Vault transit engine, with the
// operations named as ppml's so the two outputs line up.
func benchVault(cmd *cobra.Command, f *clientFlags, vt *loadgen.VaultTransit, conc []int, duration time.Duration) error {
	ctx := cmd.Context()
	if err := vt.Setup(ctx); err != nil {
		return err
	}
	ct, err := vt.DataKeyWrapped(ctx)
	if err != nil {
		return err
	}
	var results []loadgen.Result
	for _, c := range conc {
		results = append(results,
			loadgen.Run(ctx, "GenerateDataKeyWithoutPlaintext", c, duration, 0, func(ctx context.Context) error {
				_, err := vt.DataKeyWrapped(ctx)
				return err
			}),
			loadgen.Run(ctx, "Decrypt", c, duration, 0, func(ctx context.Context) error {
				return vt.Decrypt(ctx, ct)
			}))
	}
	return printKMSBench(cmd, f, results, duration, "Vault transit (datakey/wrapped, decrypt)")
}
