package bench

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

	"github.com/ppml-project/ppml/agent"
	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/client/kmskeys"
	"github.com/ppml-project/ppml/enclave"
	"github.com/ppml-project/ppml/internal/loadgen"
	"github.com/ppml-project/ppml/quote/sim"
)

// Release measures attest + key release as a workload does it: nonce,
// simulated SGX quote, then verify and HPKE release of one data key in one
// request (as ppml attest does), against a server started with
// --allow-simulation.
type Release struct {
	Client      client.Config // URL, CAFile and the AdminToken that enrols the benchmark app
	SimDir      string        // the server's simulation PKI (<data-dir>/sim)
	Concurrency int
	Duration    time.Duration
}

// ReleaseReport is the result of a Release run.
type ReleaseReport struct {
	Result      loadgen.Result
	Concurrency int
	Duration    time.Duration
}

// Run enrols an app, creates a policy for a simulated enclave and a key
// bound to it, wraps a data key under it and measures agent runs.
func (b Release) Run(ctx context.Context) (ReleaseReport, error) {
	cfg, err := enrollApp(ctx, b.Client)
	if err != nil {
		return ReleaseReport{}, err
	}
	mr := [32]byte{0xbe, 0x4c}
	as, _ := client.NewAttestation(cfg)
	p, err := as.CreatePolicy(ctx, json.RawMessage(fmt.Sprintf(`{"tee":"sgx","mr_enclave":[%q],"allow_simulated":true,"require_crl":false}`, hex.EncodeToString(mr[:]))))
	if err != nil {
		return ReleaseReport{}, err
	}
	n, _ := client.NewNative(cfg)
	k, err := n.CreateKey(ctx, client.KeyOptions{ReleasePolicies: []string{p.ID}})
	if err != nil {
		return ReleaseReport{}, err
	}
	e, _ := client.NewEHSM(cfg)
	dk, err := e.GenerateDataKeyWithoutPlaintext(ctx, k.ID, 32, kmskeys.BigDLAAD) // as ppml encrypt wraps them
	if err != nil {
		return ReleaseReport{}, err
	}
	work, err := os.MkdirTemp("", "ppml-bench-release")
	if err != nil {
		return ReleaseReport{}, err
	}
	defer os.RemoveAll(work)
	wrapped := filepath.Join(work, "dk")
	if err := os.WriteFile(wrapped, []byte(dk), 0o600); err != nil {
		return ReleaseReport{}, err
	}
	dir := filepath.Join(work, "enclave")
	if err := enclave.PrepareSim(dir, b.SimDir, "sgx", sim.Measurements{MREnclave: mr}); err != nil {
		return ReleaseReport{}, err
	}
	ac := agent.Config{URL: cfg.URL, AppID: cfg.AppID, APIKey: cfg.APIKey, PolicyID: p.ID, Type: agent.TypeNative,
		AttestationDir: dir, CAFile: cfg.CAFile, Stdout: io.Discard, Stderr: io.Discard,
		DataKeys: []agent.DataKey{{Wrapped: wrapped, Dest: "env:K"}}}
	r := loadgen.Run(ctx, "attest+release", b.Concurrency, b.Duration, 0, func(ctx context.Context) error {
		c := ac
		var stderr strings.Builder
		c.Stderr = &stderr
		if res := agent.Run(ctx, c); res.ExitCode != 0 || len(res.Env) != 1 {
			return fmt.Errorf("attestation failed: %s", strings.TrimSpace(stderr.String()))
		}
		return nil
	})
	return ReleaseReport{Result: r, Concurrency: b.Concurrency, Duration: b.Duration}, nil
}

// WriteText prints the report in two lines.
func (r ReleaseReport) WriteText(w io.Writer) {
	res := r.Result
	fmt.Fprintf(w, "attest + release (nonce, simulated SGX quote, verify + HPKE release in one request) over HTTPS, concurrency %d, %s\n", r.Concurrency, r.Duration)
	fmt.Fprintf(w, "ops/s %.1f  p50 %s  p99 %s  errors %d\n", res.OpsPerSec, res.P50.Round(10*time.Microsecond), res.P99.Round(10*time.Microsecond), res.Errors)
}
