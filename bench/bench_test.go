package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml-project/ppml/internal/loadgen"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
)

func TestParseLevels(t *testing.T) {
	got, err := ParseLevels(" 1, 16 ,1024")
	if err != nil || len(got) != 3 || got[0] != 1 || got[1] != 16 || got[2] != 1024 {
		t.Fatalf("ParseLevels = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "1,x", "1025", "-3", "1,,2"} {
		if _, err := ParseLevels(bad); err == nil || err.Error() != "want a comma-separated list of 1..1024" {
			t.Errorf("ParseLevels(%q) = %v, want the usage error", bad, err)
		}
	}
}

// checkOps fails unless every result did some work and none failed.
func checkOps(t *testing.T, results []loadgen.Result) {
	t.Helper()
	for _, r := range results {
		if r.Ops == 0 || r.Errors != 0 || r.OpsPerSec <= 0 || r.P50 <= 0 || r.P99 < r.P50 {
			t.Errorf("%s at %d: %+v", r.Name, r.Concurrency, r)
		}
	}
}

func TestKMSEnrolsOrUsesCredentials(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	_, app := inst.Enroll(t)
	for name, cfg := range map[string]struct{ appID, apiKey, admin string }{
		"fresh app":  {admin: inst.AdminToken},
		"given app":  {appID: app.AppID, apiKey: app.APIKey},
		"half given": {appID: app.AppID, admin: inst.AdminToken}, // no API key: enrols
	} {
		t.Run(name, func(t *testing.T) {
			c := inst.Config()
			c.AppID, c.APIKey, c.AdminToken = cfg.appID, cfg.apiKey, cfg.admin
			rep, err := KMS{Client: c, Levels: []int{1, 2}, Duration: 200 * time.Millisecond}.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range rep.Results {
				names = append(names, r.Name)
			}
			if got := strings.Join(names, ","); got != "GenerateDataKeyWithoutPlaintext,Decrypt,GenerateDataKeyWithoutPlaintext,Decrypt" ||
				rep.Results[0].Concurrency != 1 || rep.Results[2].Concurrency != 2 {
				t.Fatalf("results %s %+v", got, rep.Results)
			}
			checkOps(t, rep.Results)
			if rep.API != "eHSM API" {
				t.Errorf("API %q", rep.API)
			}
		})
	}
}

// The in-process server is this process: its CPU time per operation is
// measured, and so is the load generator's.
func TestKMSServerCPU(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{})
	c := inst.Config()
	rep, err := KMS{Client: c, Levels: []int{2}, Duration: 300 * time.Millisecond, ServerPID: os.Getpid()}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkOps(t, rep.Results)
	for _, r := range rep.Results {
		// 10 ms ticks over ~300 ms of work: some ticks land, but per op
		// it stays far below a second.
		if r.ClientCPUPerOp <= 0 || r.ServerCPUPerOp <= 0 || r.ServerCPUPerOp > time.Second {
			t.Errorf("%s: client %v, server %v per op", r.Name, r.ClientCPUPerOp, r.ServerCPUPerOp)
		}
	}
	_, err = KMS{Client: c, Levels: []int{1}, Duration: 100 * time.Millisecond, ServerPID: 1 << 30}.Run(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "server CPU time: open /proc/1073741824/stat: ") {
		t.Fatalf("err = %v, want the missing process named", err)
	}
}

func TestKMSRefusesWithoutCredentials(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{})
	c := inst.Config()
	c.AdminToken = "not-the-token"
	_, err := KMS{Client: c, Levels: []int{1}, Duration: 100 * time.Millisecond}.Run(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "enrolling a benchmark app: ") {
		t.Fatalf("err = %v, want the enrolment failure", err)
	}
}

func TestKMSReportText(t *testing.T) {
	rep := KMSReport{Duration: 2 * time.Second, API: "eHSM API", Results: []loadgen.Result{
		{Name: "Decrypt", Concurrency: 16, OpsPerSec: 1234.4, P50: 1234567 * time.Nanosecond, P99: 5 * time.Millisecond, Errors: 2, FirstError: "boom"},
		{Name: "Decrypt", Concurrency: 64, OpsPerSec: 99, P50: time.Millisecond, P99: 2 * time.Millisecond, ClientCPUPerOp: 81500 * time.Nanosecond, ServerCPUPerOp: 140 * time.Microsecond},
	}}
	var b bytes.Buffer
	rep.WriteText(&b)
	lines := strings.Split(b.String(), "\n")
	if !strings.HasPrefix(lines[0], "client GOMAXPROCS=") || !strings.HasSuffix(lines[0], ", 2s per level, HTTPS keep-alive, eHSM API") {
		t.Errorf("header %q", lines[0])
	}
	want := []string{
		"operation                         conc      ops/s        p50        p99  errors  client-cpu  server-cpu",
		"Decrypt                             16       1234     1.23ms        5ms       2           -           -",
		"  first error: boom",
		"Decrypt                             64         99        1ms        2ms       0        81µs       140µs",
		"",
	}
	if got := strings.Join(lines[1:], "\n"); got != strings.Join(want, "\n") {
		t.Errorf("table:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

func TestReleaseAgainstSimulatingServer(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) { c.AllowSimulation = true }})
	rep, err := Release{Client: inst.Config(), SimDir: filepath.Join(inst.DataDir, "sim"), Concurrency: 2, Duration: time.Second}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Result.Name != "attest+release" || rep.Result.Concurrency != 2 {
		t.Fatalf("result %+v", rep.Result)
	}
	checkOps(t, []loadgen.Result{rep.Result})
	var b bytes.Buffer
	rep.WriteText(&b)
	if !strings.HasPrefix(b.String(), "attest + release (nonce, simulated SGX quote, verify + HPKE release in one request) over HTTPS, concurrency 2, 1s\nops/s ") ||
		!strings.HasSuffix(b.String(), "  errors 0\n") {
		t.Errorf("text %q", b.String())
	}
}

// A simulation PKI the server does not trust: every attestation is refused,
// and the refusals are counted with the agent's reason.
func TestReleaseCountsRefusedAttestations(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) { c.AllowSimulation = true }})
	other := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) { c.AllowSimulation = true }})
	rep, err := Release{Client: inst.Config(), SimDir: filepath.Join(other.DataDir, "sim"), Concurrency: 1, Duration: 500 * time.Millisecond}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Result.Ops != 0 || rep.Result.Errors == 0 || !strings.HasPrefix(rep.Result.FirstError, "attestation failed: ") {
		t.Fatalf("result %+v", rep.Result)
	}
}

func TestReleaseNeedsASimulationPKI(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) { c.AllowSimulation = true }})
	_, err := Release{Client: inst.Config(), SimDir: t.TempDir(), Concurrency: 1, Duration: time.Second}.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "is not a simulation directory") {
		t.Fatalf("err = %v, want the missing simulation PKI named", err)
	}
}
