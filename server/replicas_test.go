package server_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/sim"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
	"github.com/ppml-project/ppml/wire/release"
)

// replicas are two servers on one PostgreSQL database, as behind a load
// balancer: same data directory (root key, simulation PKI, admin token),
// one clock, separate processes' worth of state.
type replicas struct {
	a, b   *servertest.Instance
	clock  *servertest.Clock
	cfgA   client.Config // one app, talking to replica a
	cfgB   client.Config // the same app, talking to replica b
	simTEE *sim.SimTEE
}

func startReplicas(t *testing.T) *replicas {
	t.Helper()
	r := &replicas{clock: &servertest.Clock{}}
	allowSim := func(c *server.Config) { c.AllowSimulation = true }
	r.a = servertest.Start(t, servertest.Options{Store: "postgres", Clock: r.clock, Modify: allowSim})
	r.b = servertest.Start(t, servertest.Options{Store: "postgres", DataDir: r.a.DataDir, DB: r.a.DB, Clock: r.clock, Modify: allowSim})
	_, r.cfgA = r.a.Enroll(t)
	r.cfgB = r.cfgA
	r.cfgB.URL, r.cfgB.CAFile = r.b.URL, r.b.CAFile
	var err error
	if r.simTEE, err = sim.Load(filepath.Join(r.a.DataDir, "sim")); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *replicas) quote(t *testing.T, nonce, runtime []byte) []byte {
	t.Helper()
	q, err := r.simTEE.Quote(abi.SGX, measurements(false, bind(nonce, runtime)))
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestReplicaNonceSingleUse: a nonce issued by one replica is accepted by
// the other once, and then refused by both.
func TestReplicaNonceSingleUse(t *testing.T) {
	r := startReplicas(t)
	ctx := context.Background()
	asA, _ := client.NewAttestation(r.cfgA)
	asB, _ := client.NewAttestation(r.cfgB)
	runtime := []byte("replica runtime data")
	n, err := asA.Nonce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := client.VerifyRequest{Quote: r.quote(t, n.Nonce, runtime), Nonce: n.Nonce, RuntimeData: runtime}
	if _, err := asB.Verify(ctx, req); err != nil {
		t.Fatalf("nonce of replica a used on replica b: %v", err)
	}
	for _, as := range []*client.Attestation{asA, asB} {
		_, err := as.Verify(ctx, req)
		wantRefusal(t, err, 400, "nonce_unknown_or_used", "single use")
	}
	// And the other way round, refused on the issuing replica after use.
	n, _ = asB.Nonce(ctx)
	req = client.VerifyRequest{Quote: r.quote(t, n.Nonce, runtime), Nonce: n.Nonce, RuntimeData: runtime}
	if _, err := asA.Verify(ctx, req); err != nil {
		t.Fatalf("nonce of replica b used on replica a: %v", err)
	}
	_, err = asB.Verify(ctx, req)
	wantRefusal(t, err, 400, "nonce_unknown_or_used", "single use")
}

// TestReplicaEHSMReplay: a signed eHSM request answered by one replica is a
// replay for the other.
func TestReplicaEHSMReplay(t *testing.T) {
	r := startReplicas(t)
	rawA, rawB := newRaw(t, r.a, r.cfgA), newRaw(t, r.b, r.cfgB)
	keyID := str(t, ok(t, rawA.call("CreateKey", `{"keyspec":"EH_AES_GCM_128","origin":"EH_INTERNAL_KEY"}`)), "keyid")
	p := fmt.Sprintf(`{"keyid":%q,"keylen":32,"aad":"test"}`, keyID)
	for _, n := range []string{"", "replica-nonce"} { // BigDL sends no nonce, eHSM SDKs do
		body := rawA.signed(p, time.Now(), n)
		ok(t, rawA.post("GenerateDataKeyWithoutPlaintext", body))
		expectCode(t, rawB.post("GenerateDataKeyWithoutPlaintext", body), 400, "Timestamp can't be repeated in 20 minutes")
		expectCode(t, rawA.post("GenerateDataKeyWithoutPlaintext", body), 400, "Timestamp can't be repeated in 20 minutes")
	}
	// A fresh request signed the same way is answered by either.
	ok(t, rawB.call("GenerateDataKeyWithoutPlaintext", p))
}

// TestReplicaToken: an attestation token issued by one replica releases a
// key on the other, and neither honours it after it expired.
func TestReplicaToken(t *testing.T) {
	r := startReplicas(t)
	ctx := context.Background()
	asA, _ := client.NewAttestation(r.cfgA)
	m := measurements(false, [64]byte{})
	doc := fmt.Sprintf(`{"tee":"sgx","mr_enclave":[%q],"allow_simulated":true,"require_crl":false}`, hex.EncodeToString(m.MREnclave[:]))
	pol, err := asA.CreatePolicy(ctx, json.RawMessage(doc))
	if err != nil {
		t.Fatal(err)
	}
	na, _ := client.NewNative(r.cfgA)
	nb, _ := client.NewNative(r.cfgB)
	_, owner := r.a.Enroll(t)
	k, err := na.CreateKey(ctx, client.KeyOptions{ReleasePolicies: []string{pol.ID}, Decrypters: []string{owner.AppID}})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := client.NewEHSM(owner)
	dk, err := e.Call(ctx, "GenerateDataKey", map[string]any{"keyid": k.ID, "keylen": 32, "aad": "test"})
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := base64.StdEncoding.DecodeString(dk["ciphertext"].(string))
	aad, _ := base64.StdEncoding.DecodeString("test") // eHSM aad is base64

	priv, _ := ecdh.X25519().GenerateKey(rand.Reader)
	runtime := priv.PublicKey().Bytes()
	n, _ := asA.Nonce(ctx)
	tok, err := asA.Verify(ctx, client.VerifyRequest{Quote: r.quote(t, n.Nonce, runtime), Nonce: n.Nonce, RuntimeData: runtime, PolicyID: pol.ID})
	if err != nil {
		t.Fatal(err)
	}
	// Replica b checks the token replica a signed.
	asB, _ := client.NewAttestation(r.cfgB)
	if _, err := asB.VerifyToken(ctx, tok.Token, r.clock.Now(), 0); err != nil {
		t.Fatalf("replica b's JWKS does not verify replica a's token: %v", err)
	}
	sealed, err := nb.Release(ctx, k.ID, ct, aad, tok.Token, runtime)
	if err != nil {
		t.Fatalf("release on replica b with replica a's token: %v", err)
	}
	pt, err := release.Open(priv, k.ID, sealed)
	if err != nil || base64.StdEncoding.EncodeToString(pt) != dk["plaintext"] {
		t.Fatalf("released key: %v", err)
	}
	// After the token's lifetime (5 minutes), both refuse it.
	r.clock.Advance(6 * time.Minute)
	for name, n := range map[string]*client.Native{"a": na, "b": nb} {
		_, err := n.Release(ctx, k.ID, ct, aad, tok.Token, runtime)
		if err == nil {
			t.Fatalf("replica %s released with an expired token", name)
		}
		wantRefusal(t, err, 401, "invalid_token", "expired at")
	}
}
