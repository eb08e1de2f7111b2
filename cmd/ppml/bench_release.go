package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/agent"
	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/client/kmskeys"
	"github.com/ppml-project/ppml/enclave"
	"github.com/ppml-project/ppml/internal/loadgen"
	"github.com/ppml-project/ppml/quote/sim"
)

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
			ctx := cmd.Context()
			cfg.AdminToken = client.ReadAdminTokenFile(tokenFile)
			admin, err := client.NewNative(cfg)
			if err != nil {
				return err
			}
			if cfg.AppID, cfg.APIKey, err = admin.Enroll(ctx); err != nil {
				return fmt.Errorf("enrolling a benchmark app: %w", err)
			}
			cfg.AdminToken = ""
			mr := [32]byte{0xbe, 0x4c}
			as, _ := client.NewAttestation(cfg)
			p, err := as.CreatePolicy(ctx, json.RawMessage(fmt.Sprintf(`{"tee":"sgx","mr_enclave":[%q],"allow_simulated":true,"require_crl":false}`, hex.EncodeToString(mr[:]))))
			if err != nil {
				return err
			}
			n, _ := client.NewNative(cfg)
			k, err := n.CreateKey(ctx, client.KeyOptions{ReleasePolicies: []string{p.ID}})
			if err != nil {
				return err
			}
			e, _ := client.NewEHSM(cfg)
			dk, err := e.GenerateDataKeyWithoutPlaintext(ctx, k.ID, 32, kmskeys.BigDLAAD) // as ppml encrypt wraps them
			if err != nil {
				return err
			}
			work, err := os.MkdirTemp("", "ppml-bench-release")
			if err != nil {
				return err
			}
			defer os.RemoveAll(work)
			wrapped := filepath.Join(work, "dk")
			os.WriteFile(wrapped, []byte(dk), 0o600)
			dir := filepath.Join(work, "enclave")
			if err := enclave.PrepareSim(dir, simDir, "sgx", sim.Measurements{MREnclave: mr}); err != nil {
				return err
			}
			ac := agent.Config{URL: cfg.URL, AppID: cfg.AppID, APIKey: cfg.APIKey, PolicyID: p.ID, Type: agent.TypeNative,
				AttestationDir: dir, CAFile: cfg.CAFile, Stdout: io.Discard, Stderr: io.Discard,
				DataKeys: []agent.DataKey{{Wrapped: wrapped, Dest: "env:K"}}}
			r := loadgen.Run(ctx, "attest+release", concurrency, duration, 0, func(ctx context.Context) error {
				c := ac
				var stderr strings.Builder
				c.Stderr = &stderr
				if res := agent.Run(ctx, c); res.ExitCode != 0 || len(res.Env) != 1 {
					return fmt.Errorf("attestation failed: %s", strings.TrimSpace(stderr.String()))
				}
				return nil
			})
			return f.print(cmd.OutOrStdout(), r, func(w io.Writer) {
				fmt.Fprintf(w, "attest + release (nonce, simulated SGX quote, verify, token, HPKE release) over HTTPS, concurrency %d, %s\n", concurrency, duration)
				fmt.Fprintf(w, "ops/s %.1f  p50 %s  p99 %s  errors %d\n", r.OpsPerSec, r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Errors)
			})
		},
	}
	f.register(cmd)
	adminTokenFlag(cmd, &tokenFile)
	cmd.Flags().StringVar(&simDir, "sim-dir", "", "simulation PKI of the server (<data-dir>/sim)")
	cmd.Flags().DurationVar(&duration, "duration", 10*time.Second, "measurement duration")
	cmd.Flags().IntVar(&concurrency, "concurrency", 1, "concurrent workloads")
	return cmd
}
