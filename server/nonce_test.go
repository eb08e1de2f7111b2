package server_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/sim"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
)

// Nonces are stateless (attestation/nonce.go): issuing one writes nothing,
// yet each is accepted once, on any replica, across restarts; an altered
// one is refused without a write.
func TestStatelessNonceSingleUse(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			ctx := context.Background()
			allowSim := func(c *server.Config) { c.AllowSimulation = true }
			a := servertest.Start(t, servertest.Options{Store: st, Modify: allowSim})
			b := servertest.Start(t, servertest.Options{Store: st, DataDir: a.DataDir, DB: a.DB, Modify: allowSim})
			_, cfgA := a.Enroll(t)
			cfgB := cfgA
			cfgB.URL, cfgB.CAFile = b.URL, b.CAFile
			asA, _ := client.NewAttestation(cfgA)
			asB, _ := client.NewAttestation(cfgB)
			simTEE, err := sim.Load(filepath.Join(a.DataDir, "sim"))
			if err != nil {
				t.Fatal(err)
			}
			db := openDB(t, a)
			rows := func() (n int) {
				t.Helper()
				var r, old int
				if err := db.QueryRow(`SELECT COUNT(*) FROM replay_records`).Scan(&r); err != nil {
					t.Fatal(err)
				}
				db.QueryRow(`SELECT COUNT(*) FROM attest_nonces`).Scan(&old)
				return r + old
			}
			request := func(n []byte) client.VerifyRequest {
				t.Helper()
				q, err := simTEE.Quote(abi.SGX, measurements(false, bind(n, nil)))
				if err != nil {
					t.Fatal(err)
				}
				return client.VerifyRequest{Quote: q, Nonce: n}
			}

			before := rows()
			n, err := asA.Nonce(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(n.Nonce) != 32 {
				t.Fatalf("nonce of %d bytes", len(n.Nonce))
			}
			if after := rows(); after != before {
				t.Fatalf("issuing a nonce wrote %d rows", after-before)
			}
			// Altered: refused, nothing written.
			for _, alter := range []func([]byte) []byte{
				func(v []byte) []byte { v[31] ^= 1; return v }, // tag
				func(v []byte) []byte { v[0] ^= 1; return v },  // random part
				func(v []byte) []byte { v[19] ^= 1; return v }, // expiry
				func(v []byte) []byte { return v[:16] },        // length
			} {
				forged := alter(append([]byte{}, n.Nonce...))
				_, err := asB.Verify(ctx, request(forged))
				wantRefusal(t, err, 400, "nonce_unknown_or_used", "not issued to this app")
			}
			if after := rows(); after != before {
				t.Fatalf("refusing altered nonces wrote %d rows", after-before)
			}

			// Issued by a, a restarted, used on b once, then refused by
			// both, b restarted too.
			req := request(n.Nonce)
			a.Stop()
			a = servertest.Start(t, servertest.Options{Store: st, DataDir: a.DataDir, DB: a.DB, Modify: allowSim})
			cfgA.URL, cfgA.CAFile = a.URL, a.CAFile
			asA, _ = client.NewAttestation(cfgA)
			if _, err := asB.Verify(ctx, req); err != nil {
				t.Fatalf("nonce of replica a (restarted since) on replica b: %v", err)
			}
			b.Stop()
			b = servertest.Start(t, servertest.Options{Store: st, DataDir: a.DataDir, DB: a.DB, Modify: allowSim})
			cfgB.URL, cfgB.CAFile = b.URL, b.CAFile
			asB, _ = client.NewAttestation(cfgB)
			for _, as := range []*client.Attestation{asA, asB} {
				_, err := as.Verify(ctx, req)
				wantRefusal(t, err, 400, "nonce_unknown_or_used", "already used")
			}
		})
	}
}
