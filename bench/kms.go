// Package bench measures the running services from outside, as their
// clients use them: `ppml bench kms` (data-key operations through the eHSM
// API, or a Vault transit engine as a reference peer) and `ppml bench
// release` (attest + key release through the agent). It enrols, creates
// what the run needs, drives internal/loadgen and reports.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/internal/loadgen"
)

// ParseLevels reads a comma-separated list of concurrency levels, each
// 1..1024.
func ParseLevels(s string) ([]int, error) {
	var levels []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1024 {
			return nil, errors.New("want a comma-separated list of 1..1024")
		}
		levels = append(levels, n)
	}
	return levels, nil
}

// KMS runs GenerateDataKeyWithoutPlaintext and Decrypt through the eHSM
// API at each level.
type KMS struct {
	// Client reaches the server. Without AppID and APIKey a fresh app is
	// enrolled with AdminToken.
	Client   client.Config
	Levels   []int
	Duration time.Duration // of each measurement
}

// Vault runs the same operations against a Vault/OpenBao transit engine
// (datakey/wrapped and decrypt), named as ppml's so the reports line up.
type Vault struct {
	URL, Token string
	HTTP       *http.Client
	Levels     []int
	Duration   time.Duration
}

// KMSReport holds one result per operation and level.
type KMSReport struct {
	Results  []loadgen.Result
	Duration time.Duration
	API      string // what was measured, for the text header
}

// Run enrols if needed, creates an AES-GCM key and measures.
func (k KMS) Run(ctx context.Context) (KMSReport, error) {
	cfg := k.Client
	if cfg.AppID == "" || cfg.APIKey == "" { // no complete credentials: a fresh benchmark app
		e, err := client.NewEHSM(cfg)
		if err != nil {
			return KMSReport{}, err
		}
		if cfg.AppID, cfg.APIKey, err = e.Enroll(ctx); err != nil {
			return KMSReport{}, fmt.Errorf("enrolling a benchmark app: %w", err)
		}
	}
	cfg.AdminToken = ""
	e, err := client.NewEHSM(cfg)
	if err != nil {
		return KMSReport{}, err
	}
	keyID, err := e.CreateKey(ctx, "EH_AES_GCM_256")
	if err != nil {
		return KMSReport{}, err
	}
	ct, err := e.GenerateDataKeyWithoutPlaintext(ctx, keyID, 32, "dGVzdA==")
	if err != nil {
		return KMSReport{}, err
	}
	results := runDataKeyOps(ctx, k.Levels, k.Duration,
		func(ctx context.Context) error {
			_, err := e.GenerateDataKeyWithoutPlaintext(ctx, keyID, 32, "dGVzdA==")
			return err
		},
		func(ctx context.Context) error {
			_, err := e.Decrypt(ctx, keyID, ct, "dGVzdA==")
			return err
		})
	return KMSReport{Results: results, Duration: k.Duration, API: "eHSM API"}, nil
}

// Run sets up the transit key and measures.
func (v Vault) Run(ctx context.Context) (KMSReport, error) {
	vt := &loadgen.VaultTransit{URL: v.URL, Token: v.Token, Key: "ppml-bench", HTTP: v.HTTP}
	if err := vt.Setup(ctx); err != nil {
		return KMSReport{}, err
	}
	ct, err := vt.DataKeyWrapped(ctx)
	if err != nil {
		return KMSReport{}, err
	}
	results := runDataKeyOps(ctx, v.Levels, v.Duration,
		func(ctx context.Context) error {
			_, err := vt.DataKeyWrapped(ctx)
			return err
		},
		func(ctx context.Context) error { return vt.Decrypt(ctx, ct) })
	return KMSReport{Results: results, Duration: v.Duration, API: "Vault transit (datakey/wrapped, decrypt)"}, nil
}

// runDataKeyOps measures generate then decrypt at each level.
func runDataKeyOps(ctx context.Context, levels []int, d time.Duration, generate, decrypt func(context.Context) error) []loadgen.Result {
	var results []loadgen.Result
	for _, c := range levels {
		results = append(results,
			loadgen.Run(ctx, "GenerateDataKeyWithoutPlaintext", c, d, 0, generate),
			loadgen.Run(ctx, "Decrypt", c, d, 0, decrypt))
	}
	return results
}

// WriteText prints the report as a table, with the first error of an
// operation that had errors.
func (r KMSReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "client GOMAXPROCS=%d, %s per level, HTTPS keep-alive, %s\n", runtime.GOMAXPROCS(0), r.Duration, r.API)
	fmt.Fprintf(w, "%-32s %5s %10s %10s %10s %7s\n", "operation", "conc", "ops/s", "p50", "p99", "errors")
	for _, res := range r.Results {
		fmt.Fprintf(w, "%-32s %5d %10.0f %10s %10s %7d\n", res.Name, res.Concurrency, res.OpsPerSec,
			res.P50.Round(10*time.Microsecond), res.P99.Round(10*time.Microsecond), res.Errors)
		if res.FirstError != "" {
			fmt.Fprintf(w, "  first error: %s\n", res.FirstError)
		}
	}
}
