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
	// ServerPID, when not 0, is the server's process on this machine: its
	// CPU time per operation is reported too (Linux /proc).
	ServerPID int
}

// Vault runs the same operations against a Vault/OpenBao transit engine
// (datakey/wrapped and decrypt), named as ppml's so the reports line up.
type Vault struct {
	URL, Token string
	HTTP       *http.Client
	Levels     []int
	Duration   time.Duration
	ServerPID  int // as KMS.ServerPID
}

// KMSReport holds one result per operation and level.
type KMSReport struct {
	Results  []loadgen.Result
	Duration time.Duration
	API      string // what was measured, for the text header
}

// enrollApp enrols a fresh benchmark app with cfg's admin token and
// returns its configuration, without the admin token.
func enrollApp(ctx context.Context, cfg client.Config) (client.Config, error) {
	e, err := client.NewEHSM(cfg)
	if err != nil {
		return cfg, err
	}
	if cfg.AppID, cfg.APIKey, err = e.Enroll(ctx); err != nil {
		return cfg, fmt.Errorf("enrolling a benchmark app: %w", err)
	}
	cfg.AdminToken = ""
	return cfg, nil
}

// dataKeyFixture creates, for app, an AES-GCM primary key and a data key
// wrapped under it: what the GenerateDataKey and Decrypt measurements use.
func dataKeyFixture(ctx context.Context, app client.Config) (e *client.EHSM, keyID, wrapped string, err error) {
	if e, err = client.NewEHSM(app); err != nil {
		return nil, "", "", err
	}
	if keyID, err = e.CreateKey(ctx, "EH_AES_GCM_256"); err != nil {
		return nil, "", "", err
	}
	if wrapped, err = e.GenerateDataKeyWithoutPlaintext(ctx, keyID, 32, "dGVzdA=="); err != nil {
		return nil, "", "", err
	}
	return e, keyID, wrapped, nil
}

// Run enrols if needed, creates an AES-GCM key and measures.
func (k KMS) Run(ctx context.Context) (KMSReport, error) {
	cfg := k.Client
	if cfg.AppID == "" || cfg.APIKey == "" { // no complete credentials: a fresh benchmark app
		var err error
		if cfg, err = enrollApp(ctx, cfg); err != nil {
			return KMSReport{}, err
		}
	}
	cfg.AdminToken = ""
	e, keyID, ct, err := dataKeyFixture(ctx, cfg)
	if err != nil {
		return KMSReport{}, err
	}
	results, err := runDataKeyOps(ctx, k.Levels, k.Duration, k.ServerPID,
		func(ctx context.Context) error {
			_, err := e.GenerateDataKeyWithoutPlaintext(ctx, keyID, 32, "dGVzdA==")
			return err
		},
		func(ctx context.Context) error {
			_, err := e.Decrypt(ctx, keyID, ct, "dGVzdA==")
			return err
		})
	if err != nil {
		return KMSReport{}, err
	}
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
	results, err := runDataKeyOps(ctx, v.Levels, v.Duration, v.ServerPID,
		func(ctx context.Context) error {
			_, err := vt.DataKeyWrapped(ctx)
			return err
		},
		func(ctx context.Context) error { return vt.Decrypt(ctx, ct) })
	if err != nil {
		return KMSReport{}, err
	}
	return KMSReport{Results: results, Duration: v.Duration, API: "Vault transit (datakey/wrapped, decrypt)"}, nil
}

// runDataKeyOps measures generate then decrypt at each level, with the
// CPU time process pid (if not 0) spent per operation.
func runDataKeyOps(ctx context.Context, levels []int, d time.Duration, pid int, generate, decrypt func(context.Context) error) ([]loadgen.Result, error) {
	var results []loadgen.Result
	run := func(name string, c int, op func(context.Context) error) error {
		var before time.Duration
		if pid != 0 {
			var err error
			if before, err = loadgen.PIDCPU(pid); err != nil {
				return fmt.Errorf("server CPU time: %w", err)
			}
		}
		r := loadgen.Run(ctx, name, c, d, 0, op)
		if pid != 0 {
			after, err := loadgen.PIDCPU(pid)
			if err != nil {
				return fmt.Errorf("server CPU time: %w", err)
			}
			if r.Ops > 0 {
				r.ServerCPUPerOp = (after - before) / time.Duration(r.Ops)
			}
		}
		results = append(results, r)
		return nil
	}
	for _, c := range levels {
		if err := run("GenerateDataKeyWithoutPlaintext", c, generate); err != nil {
			return nil, err
		}
		if err := run("Decrypt", c, decrypt); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// cpuPerOp prints a CPU time per operation in µs, "-" when not measured.
func cpuPerOp(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%dµs", d.Microseconds())
}

// WriteText prints the report as a table (with the CPU time per operation
// of this process and of the server, "-" where not measured), with the
// first error of an operation that had errors.
func (r KMSReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "client GOMAXPROCS=%d, %s per level, HTTPS keep-alive, %s\n", runtime.GOMAXPROCS(0), r.Duration, r.API)
	fmt.Fprintf(w, "%-32s %5s %10s %10s %10s %7s %11s %11s\n", "operation", "conc", "ops/s", "p50", "p99", "errors", "client-cpu", "server-cpu")
	for _, res := range r.Results {
		fmt.Fprintf(w, "%-32s %5d %10.0f %10s %10s %7d %11s %11s\n", res.Name, res.Concurrency, res.OpsPerSec,
			res.P50.Round(10*time.Microsecond), res.P99.Round(10*time.Microsecond), res.Errors, cpuPerOp(res.ClientCPUPerOp), cpuPerOp(res.ServerCPUPerOp))
		if res.FirstError != "" {
			fmt.Fprintf(w, "  first error: %s\n", res.FirstError)
		}
	}
}
