package agent_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/agent"
	"github.com/ppml-project/ppml/enclave"
	"github.com/ppml-project/ppml/internal/tlsutil"
	"github.com/ppml-project/ppml/quote/sim"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
)

// TestServerChallengeBindsTLSKey: a server with an in-memory TLS key binds
// its hash in the self-quote; the workload accepts that connection, and
// refuses a TLS-terminating relay in the middle (which holds another key
// the workload trusts) even though the relayed quote itself verifies.
func TestServerChallengeBindsTLSKey(t *testing.T) {
	ctx := context.Background()
	inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) {
		c.AllowSimulation, c.SelfAttestation = true, "simulated"
		c.TLSInMemory, c.TLSDNSNames = true, []string{"localhost"}
	}})
	if _, err := os.Stat(filepath.Join(inst.DataDir, "tls", "server.key")); err == nil {
		t.Fatal("--tls-in-memory wrote the private key")
	}
	_, cfg := inst.Enroll(t)
	simDir := filepath.Join(inst.DataDir, "sim")
	dir := filepath.Join(t.TempDir(), "enclave")
	if err := enclave.PrepareSim(dir, simDir, "sgx", sim.Measurements{MREnclave: goodMR}); err != nil {
		t.Fatal(err)
	}
	challenge := base64.StdEncoding.EncodeToString([]byte("which key do you hold?"))
	run := func(url, caFile string) (agent.Result, string) {
		var out bytes.Buffer
		res := agent.Run(ctx, agent.Config{URL: url, AppID: cfg.AppID, APIKey: cfg.APIKey, Type: agent.TypeEHSM,
			AttestationDir: dir, CAFile: caFile, Server: &agent.ServerCheck{Challenge: challenge, SimDir: simDir}, Stdout: &out, Stderr: &out})
		return res, out.String()
	}
	if res, out := run(inst.URL, inst.CAFile); res.ExitCode != 0 || !strings.Contains(out, "binds the TLS key of this connection") {
		t.Fatalf("direct: %d\n%s", res.ExitCode, out)
	}

	// A relay terminating TLS with its own (trusted) key.
	relayCert, relayPEM, err := tlsutil.InMemory([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	upstream, _ := url.Parse(inst.URL)
	ca, _ := os.ReadFile(inst.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	rp := httputil.NewSingleHostReverseProxy(upstream)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	relay := httptest.NewUnstartedServer(rp)
	relay.TLS = &tls.Config{Certificates: []tls.Certificate{relayCert}}
	relay.StartTLS()
	defer relay.Close()
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(bundle, append(append([]byte{}, ca...), relayPEM...), 0o644)
	res, out := run(relay.URL, bundle)
	if res.ExitCode != 1 || !strings.Contains(out, "binds a TLS key other than the one this connection uses") || strings.Contains(out, "Attestation Success!") {
		t.Fatalf("relay accepted: %d\n%s", res.ExitCode, out)
	}
}
