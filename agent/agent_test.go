package agent_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml-project/ppml/agent"
	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/client/kmskeys"
	"github.com/ppml-project/ppml/dataformat/files"
	"github.com/ppml-project/ppml/dataformat/keysource"
	"github.com/ppml-project/ppml/enclave"
	"github.com/ppml-project/ppml/quote/policy"
	"github.com/ppml-project/ppml/quote/sim"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
	"github.com/ppml-project/ppml/wire/release"
)

var (
	goodMR  = [32]byte{0x68, 0x82, 0x3b, 0xc6}
	otherMR = [32]byte{0x33, 0xd8}
	signer  = [32]byte{0x9a, 0xff}
)

type world struct {
	inst      *servertest.Instance
	clock     *servertest.Clock
	workload  client.Config // app W: owns the bound key, runs in the enclave
	owner     client.Config // app D: data owner, named decrypter
	policyID  string
	keyID     string
	wrapped   string // base64 data key ciphertext made by the owner
	plaintext string // its plaintext (base64)
	simDir    string
}

func setup(t *testing.T, store string) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{clock: &servertest.Clock{}}
	w.inst = servertest.Start(t, servertest.Options{Store: store, Clock: w.clock, Modify: func(c *server.Config) { c.AllowSimulation = true }})
	w.simDir = filepath.Join(w.inst.DataDir, "sim")
	_, w.workload = w.inst.Enroll(t)
	_, w.owner = w.inst.Enroll(t)
	as, _ := client.NewAttestation(w.workload)
	doc := fmt.Sprintf(`{"tee":"sgx","mr_enclave":[%q],"mr_signer":[%q],"allow_simulated":true,"require_crl":false}`,
		hex.EncodeToString(goodMR[:]), hex.EncodeToString(signer[:]))
	p, err := as.CreatePolicy(ctx, json.RawMessage(doc))
	if err != nil {
		t.Fatalf("create policy: %v", err)
	}
	w.policyID = p.ID
	n, _ := client.NewNative(w.workload)
	k, err := n.CreateKey(ctx, client.KeyOptions{ReleasePolicies: []string{p.ID}, Decrypters: []string{w.owner.AppID}})
	if err != nil {
		t.Fatalf("create bound key: %v", err)
	}
	w.keyID = k.ID
	// The data owner makes a data key under the bound key, as ppml encrypt does.
	e, _ := client.NewEHSM(w.owner)
	res, err := e.Call(ctx, "GenerateDataKey", map[string]any{"keyid": k.ID, "keylen": 32, "aad": "test"})
	if err != nil {
		t.Fatalf("owner GenerateDataKey on the bound key: %v", err)
	}
	w.wrapped, w.plaintext = res["ciphertext"].(string), res["plaintext"].(string)
	return w
}

func (w *world) enclaveDir(t *testing.T, mr [32]byte, debug bool) string {
	dir := filepath.Join(t.TempDir(), "attestation")
	if err := enclave.PrepareSim(dir, w.simDir, "sgx", sim.Measurements{MREnclave: mr, MRSigner: signer, Debug: debug}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (w *world) agentConfig(t *testing.T, dir string, dests ...string) (agent.Config, *bytes.Buffer, *bytes.Buffer) {
	wrappedFile := filepath.Join(t.TempDir(), "datakey.wrapped")
	os.WriteFile(wrappedFile, []byte(w.wrapped+"\n"), 0o600)
	var out, errb bytes.Buffer
	c := agent.Config{URL: w.inst.URL, AppID: w.workload.AppID, APIKey: w.workload.APIKey, PolicyID: w.policyID,
		Type: agent.TypeNative, AttestationDir: dir, CAFile: w.inst.CAFile, Stdout: &out, Stderr: &errb}
	for _, d := range dests {
		c.DataKeys = append(c.DataKeys, agent.DataKey{Wrapped: wrappedFile, Dest: d})
	}
	return c, &out, &errb
}

func auditLog(t *testing.T, w *world) string {
	b, _ := os.ReadFile(filepath.Join(w.inst.DataDir, "audit.log"))
	return string(b)
}

func TestAttestedKeyRelease(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			ctx := context.Background()
			w := setup(t, st)

			// App id / API key alone never reveal a bound key, even the creating app's.
			eW, _ := client.NewEHSM(w.workload)
			if _, err := eW.Decrypt(ctx, w.keyID, w.wrapped, "test"); err == nil || !strings.Contains(err.Error(), "attestation") {
				t.Fatalf("workload app Decrypt of a bound key: %v", err)
			}
			nW, _ := client.NewNative(w.workload)
			rsa, _ := nW.CreateKey(ctx, client.KeyOptions{Spec: "EH_RSA_2048"})
			if _, err := eW.Call(ctx, "ExportDataKey", map[string]any{"keyid": w.keyID, "ukeyid": rsa.ID, "olddatakey_base": w.wrapped, "aad": "test"}); err == nil || !strings.Contains(err.Error(), "attestation") {
				t.Fatalf("ExportDataKey of a bound key: %v", err)
			}
			if _, err := nW.Decrypt(ctx, w.keyID, mustB64(w.wrapped), []byte{0xb5, 0xeb, 0x2d}); err == nil {
				t.Fatal("native Decrypt of a bound key succeeded")
			}
			// An RSA key cannot be bound: its private operations could not be
			// released, only done in the server with the API key.
			if _, err := nW.CreateKey(ctx, client.KeyOptions{Spec: "EH_RSA_2048", ReleasePolicies: []string{w.policyID}}); err == nil || !strings.Contains(err.Error(), "unbindable_spec") {
				t.Fatalf("binding an RSA key: %v", err)
			}
			// New data keys can still be made, and the named decrypter reads them.
			if _, err := eW.GenerateDataKeyWithoutPlaintext(ctx, w.keyID, 32, "test"); err != nil {
				t.Fatalf("GenerateDataKeyWithoutPlaintext on a bound key: %v", err)
			}
			eD, _ := client.NewEHSM(w.owner)
			if pt, err := eD.Decrypt(ctx, w.keyID, w.wrapped, "test"); err != nil || pt != w.plaintext {
				t.Fatalf("decrypter app: %v", err)
			}
			// A third app sees nothing.
			_, third := w.inst.Enroll(t)
			eX, _ := client.NewEHSM(third)
			if _, err := eX.Decrypt(ctx, w.keyID, w.wrapped, "test"); err == nil || !strings.Contains(err.Error(), "keyid error") {
				t.Fatalf("unrelated app: %v", err)
			}

			// The workload attests in a simulated enclave with the expected
			// measurements and gets the key in a file and in its environment.
			dest := filepath.Join(t.TempDir(), "keys", "data.key")
			c, out, errb := w.agentConfig(t, w.enclaveDir(t, goodMR, false), dest, "env:DATA_KEY")
			res := agent.Run(ctx, c)
			if res.ExitCode != 0 || !strings.Contains(out.String(), "Attestation Success!") {
				t.Fatalf("attest: exit %d\nstdout %s\nstderr %s", res.ExitCode, out, errb)
			}
			if got, _ := os.ReadFile(dest); string(got) != w.plaintext {
				t.Fatalf("released key file %q, want the data key", got)
			}
			if st, _ := os.Stat(dest); st.Mode().Perm() != 0o600 {
				t.Fatalf("key file mode %v", st.Mode())
			}
			if len(res.Env) != 1 || res.Env[0] != "DATA_KEY="+w.plaintext {
				t.Fatalf("env delivery %v", res.Env)
			}
			if !strings.Contains(errb.String(), "[SIMULATION]") {
				t.Fatal("simulated attestation not announced")
			}
			if !strings.Contains(auditLog(t, w), `"action":"ReleaseKey","key_id":"`+w.keyID+`","result":"ok"`) {
				t.Fatal("release not audited")
			}

			// The wrapped key can also be named by the encrypted file itself
			// (ppml format: its header carries it); the released key opens it.
			plainFile := filepath.Join(t.TempDir(), "people.csv")
			os.WriteFile(plainFile, []byte("name,age\nalice,30\n"), 0o644)
			encFile := plainFile + ".ppml"
			if _, err := files.Encrypt(ctx, plainFile, encFile, files.Options{Format: files.FormatPPML, Keys: &kmskeys.EHSM{Client: eD, KeyID: w.keyID}}); err != nil {
				t.Fatal(err)
			}
			cbcFile := plainFile + ".cbc"
			if _, err := files.Encrypt(ctx, plainFile, cbcFile, files.Options{Format: files.FormatBigDL, Keys: &kmskeys.EHSM{Client: eD, KeyID: w.keyID}}); err != nil {
				t.Fatal(err)
			}
			c2, out2, errb2 := w.agentConfig(t, w.enclaveDir(t, goodMR, false))
			c2.DataKeys = []agent.DataKey{{Wrapped: encFile, Dest: "env:K"}, {Wrapped: cbcFile, Dest: "env:C"}}
			res2 := agent.Run(ctx, c2)
			if res2.ExitCode != 0 || len(res2.Env) != 2 {
				t.Fatalf("release via the encrypted files: %s %s", out2, errb2)
			}
			if _, err := files.Decrypt(ctx, cbcFile, filepath.Join(t.TempDir(), "p.csv"), files.Options{Keys: fixedKey(strings.TrimPrefix(res2.Env[1], "C="))}); err != nil {
				t.Fatalf("released key does not open the .cbc file: %v", err)
			}
			dec := filepath.Join(t.TempDir(), "people.csv")
			if _, err := files.Decrypt(ctx, encFile, dec, files.Options{Keys: fixedKey(strings.TrimPrefix(res2.Env[0], "K="))}); err != nil {
				t.Fatalf("released key does not open the file: %v", err)
			}

			// Refusals, each with its reason on the client and in the audit log.
			for _, c := range []struct {
				name   string
				mr     [32]byte
				debug  bool
				reason string
			}{
				{"other MRENCLAVE", otherMR, false, "mr_enclave"},
				{"debug enclave", goodMR, true, "debug"},
			} {
				dest := filepath.Join(t.TempDir(), "k")
				cfg, out, errb := w.agentConfig(t, w.enclaveDir(t, c.mr, c.debug), dest)
				res := agent.Run(ctx, cfg)
				if res.ExitCode != 1 || !strings.Contains(out.String(), "Attestation Fail! Application killed!") || !strings.Contains(errb.String(), c.reason) {
					t.Fatalf("%s: exit %d\nstdout %s\nstderr %s", c.name, res.ExitCode, out, errb)
				}
				if _, err := os.Stat(dest); err == nil {
					t.Fatalf("%s: a key was delivered after a failed attestation", c.name)
				}
				if !strings.Contains(auditLog(t, w), c.reason) {
					t.Fatalf("%s: refusal reason not in the audit log", c.name)
				}
			}
			// ATTESTATION_DEBUG: continues (exit 0), loudly, without any key.
			dest = filepath.Join(t.TempDir(), "k")
			cfg, out, errb := w.agentConfig(t, w.enclaveDir(t, otherMR, false), dest)
			cfg.Debug = true
			if res := agent.Run(ctx, cfg); res.ExitCode != 0 || !strings.Contains(out.String(), "ERROR:Attestation Fail! In debug mode, continue.") || !strings.Contains(errb.String(), "no key was released") {
				t.Fatalf("debug mode: %+v %s %s", res, out, errb)
			}
			if _, err := os.Stat(dest); err == nil {
				t.Fatal("debug mode delivered a key")
			}
		})
	}
}

// boundQuote is a simulated SGX quote of the enclave mr whose report data
// starts with SHA-256(nonce || rt), as the native flow wants it.
func boundQuote(t *testing.T, simTEE *sim.SimTEE, nonce, rt []byte, mr [32]byte) []byte {
	t.Helper()
	var rd [64]byte
	h := sha256.Sum256(append(append([]byte{}, nonce...), rt...))
	copy(rd[:], h[:])
	q, err := simTEE.Quote("sgx", sim.Measurements{MREnclave: mr, MRSigner: signer, ReportData: rd})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestReleaseRefusals drives the protocol by hand to reach each refusal.
func TestReleaseRefusals(t *testing.T) {
	ctx := context.Background()
	w := setup(t, "sqlite")
	as, _ := client.NewAttestation(w.workload)
	n, _ := client.NewNative(w.workload)
	simTEE, err := sim.Load(w.simDir)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := ecdh.X25519().GenerateKey(rand.Reader)
	runtime := priv.PublicKey().Bytes()
	quoteFor := func(nonce, rt []byte, mr [32]byte) []byte { return boundQuote(t, simTEE, nonce, rt, mr) }
	attest := func(cfg client.Config, policyID string, rt []byte) (client.VerifyResponse, error) {
		a, _ := client.NewAttestation(cfg)
		nonce, err := a.Nonce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return a.Verify(ctx, client.VerifyRequest{Quote: quoteFor(nonce.Nonce, rt, goodMR), Nonce: nonce.Nonce, RuntimeData: rt, PolicyID: policyID})
	}
	ct := mustB64(w.wrapped)
	aad := []byte{0xb5, 0xeb, 0x2d}
	expect := func(name string, err error, reason string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), reason) {
			t.Fatalf("%s: got %v, want a refusal mentioning %q", name, err, reason)
		}
	}

	// Reused nonce.
	nonce, _ := as.Nonce(ctx)
	q := quoteFor(nonce.Nonce, runtime, goodMR)
	good, err := as.Verify(ctx, client.VerifyRequest{Quote: q, Nonce: nonce.Nonce, RuntimeData: runtime, PolicyID: w.policyID})
	if err != nil {
		t.Fatal(err)
	}
	_, err = as.Verify(ctx, client.VerifyRequest{Quote: q, Nonce: nonce.Nonce, RuntimeData: runtime, PolicyID: w.policyID})
	expect("reused nonce", err, "nonce")
	// Report data that does not commit to the request.
	nonce, _ = as.Nonce(ctx)
	_, err = as.Verify(ctx, client.VerifyRequest{Quote: quoteFor(nonce.Nonce, []byte("something else"), goodMR), Nonce: nonce.Nonce, RuntimeData: runtime, PolicyID: w.policyID})
	expect("report data mismatch", err, "report")
	// Expired nonce.
	nonce, _ = as.Nonce(ctx)
	w.clock.Advance(6 * time.Minute)
	_, err = as.Verify(ctx, client.VerifyRequest{Quote: quoteFor(nonce.Nonce, runtime, goodMR), Nonce: nonce.Nonce, RuntimeData: runtime, PolicyID: w.policyID})
	expect("expired nonce", err, "nonce")
	w.clock.Advance(-6 * time.Minute)

	// The good token releases; the sealed key opens only with our private key.
	sealed, err := n.Release(ctx, w.keyID, ct, aad, good.Token, runtime)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := release.Open(priv, w.keyID, sealed)
	if err != nil || base64.StdEncoding.EncodeToString(pt) != w.plaintext {
		t.Fatalf("open release: %v", err)
	}
	other, _ := ecdh.X25519().GenerateKey(rand.Reader)
	if _, err := release.Open(other, w.keyID, sealed); err == nil {
		t.Fatal("released key opened with another private key")
	}
	// Runtime data other than the one the quote committed to.
	_, err = n.Release(ctx, w.keyID, ct, aad, good.Token, other.PublicKey().Bytes())
	expect("runtime data mismatch", err, "runtime_data")
	// Tampered token.
	tampered := good.Token[:len(good.Token)-3] + "AAA"
	_, err = n.Release(ctx, w.keyID, ct, aad, tampered, runtime)
	expect("tampered token", err, "token")
	// Expired token.
	w.clock.Advance(6 * time.Minute)
	_, err = n.Release(ctx, w.keyID, ct, aad, good.Token, runtime)
	expect("expired token", err, "expired")
	w.clock.Advance(-6 * time.Minute)
	// A token from another app (its own policy with the same measurements).
	_, third := w.inst.Enroll(t)
	as3, _ := client.NewAttestation(third)
	p3, _ := as3.CreatePolicy(ctx, json.RawMessage(fmt.Sprintf(`{"tee":"sgx","mr_enclave":[%q],"allow_simulated":true,"require_crl":false}`, hex.EncodeToString(goodMR[:]))))
	tok3, err := attest(third, p3.ID, runtime)
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.Release(ctx, w.keyID, ct, aad, tok3.Token, runtime)
	expect("token from another app", err, "another app")
	// The other app presenting its own token for our key: the key is not
	// its own, so it does not exist for it (no state or policy id leaks).
	n3, _ := client.NewNative(third)
	_, err = n3.Release(ctx, w.keyID, ct, aad, tok3.Token, runtime)
	expect("other app's own token", err, "key_not_found")
	// A token under no policy (the server default, which accepts this
	// simulated quote since the server allows simulation) is a valid token,
	// but not one under a policy the key is bound to.
	tokDefault, err := attest(w.workload, "", runtime)
	if err != nil {
		t.Fatalf("attestation under the server's default policy: %v", err)
	}
	if tokDefault.Token == "" || tokDefault.Claims.PolicyID != "" || !tokDefault.Claims.Simulated {
		t.Fatalf("default-policy token names a policy: %+v", tokDefault.Claims)
	}
	_, err = n.Release(ctx, w.keyID, ct, aad, tokDefault.Token, runtime)
	expect("default-policy token", err, "policy")
	// No token at all.
	_, err = n.Release(ctx, w.keyID, ct, aad, "", runtime)
	expect("no token", err, "token is required")
}

// TestReleaseWithEvidence drives the one-request release (quote and nonce
// in place of a token) to each of its refusals: the same checks as the
// token path, and the nonce spent once whatever the outcome.
func TestReleaseWithEvidence(t *testing.T) {
	ctx := context.Background()
	w := setup(t, "sqlite")
	as, _ := client.NewAttestation(w.workload)
	n, _ := client.NewNative(w.workload)
	simTEE, err := sim.Load(w.simDir)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := ecdh.X25519().GenerateKey(rand.Reader)
	runtime := priv.PublicKey().Bytes()
	evidence := func(rt []byte, mr [32]byte, policyID string) client.ReleaseEvidence {
		nonce, err := as.Nonce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return client.ReleaseEvidence{Quote: boundQuote(t, simTEE, nonce.Nonce, rt, mr), Nonce: nonce.Nonce, PolicyID: policyID}
	}
	ct := mustB64(w.wrapped)
	aad := []byte{0xb5, 0xeb, 0x2d}
	expect := func(name string, err error, code string) {
		t.Helper()
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Code != code {
			t.Fatalf("%s: got %v, want the refusal %s", name, err, code)
		}
	}

	// Accepted: the key opens with our private key only; claims come back,
	// a token only when asked for.
	ev := evidence(runtime, goodMR, w.policyID)
	res, err := n.ReleaseAttested(ctx, w.keyID, ct, aad, ev, runtime)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := release.Open(priv, w.keyID, res.Sealed); err != nil || base64.StdEncoding.EncodeToString(pt) != w.plaintext {
		t.Fatalf("open release: %v", err)
	}
	if res.Token != "" || !res.Claims.Simulated || res.Claims.PolicyID != w.policyID || res.Claims.AppID != w.workload.AppID {
		t.Fatalf("answer without issue_token: token %q, claims %+v", res.Token, res.Claims)
	}
	// The nonce is single-use: the same request again is refused.
	_, err = n.ReleaseAttested(ctx, w.keyID, ct, aad, ev, runtime)
	expect("replayed evidence", err, "nonce_unknown_or_used")

	// issue_token: the token releases the key again, as one from /verify.
	ev = evidence(runtime, goodMR, "") // the key's one policy
	ev.IssueToken = true
	res, err = n.ReleaseAttested(ctx, w.keyID, ct, aad, ev, runtime)
	if err != nil || res.Token == "" {
		t.Fatalf("issue_token: token %q, %v", res.Token, err)
	}
	if _, err := n.Release(ctx, w.keyID, ct, aad, res.Token, runtime); err != nil {
		t.Fatalf("release with the issued token: %v", err)
	}

	// Another enclave: refused by the policy.
	_, err = n.ReleaseAttested(ctx, w.keyID, ct, aad, evidence(runtime, [32]byte{0x0b}, w.policyID), runtime)
	expect("other enclave", err, "policy_refused")
	// A quote over other runtime data than the key it is sealed to.
	other, _ := ecdh.X25519().GenerateKey(rand.Reader)
	_, err = n.ReleaseAttested(ctx, w.keyID, ct, aad, evidence(other.PublicKey().Bytes(), goodMR, w.policyID), runtime)
	expect("runtime data mismatch", err, "report_data_mismatch")
	// A tampered quote: its signature fails.
	ev = evidence(runtime, goodMR, w.policyID)
	ev.Quote[len(ev.Quote)/2] ^= 1
	_, err = n.ReleaseAttested(ctx, w.keyID, ct, aad, ev, runtime)
	if err == nil {
		t.Fatal("tampered quote released the key")
	}
	// A policy of this app that the key is not bound to: refused before the
	// nonce is spent, so the same evidence then works under the right one.
	p2, err := as.CreatePolicy(ctx, json.RawMessage(fmt.Sprintf(`{"tee":"sgx","mr_enclave":[%q],"allow_simulated":true,"require_crl":false}`, hex.EncodeToString(goodMR[:]))))
	if err != nil {
		t.Fatal(err)
	}
	ev = evidence(runtime, goodMR, p2.ID)
	_, err = n.ReleaseAttested(ctx, w.keyID, ct, aad, ev, runtime)
	expect("unbound policy", err, "policy_not_bound")
	ev.PolicyID = w.policyID
	if _, err := n.ReleaseAttested(ctx, w.keyID, ct, aad, ev, runtime); err != nil {
		t.Fatalf("the evidence refused for an unbound policy was spent: %v", err)
	}
	// A token and evidence together, and evidence without its nonce.
	ev = evidence(runtime, goodMR, w.policyID)
	err = n.Do(ctx, "POST", "/v1/keys/"+w.keyID+"/release", map[string]any{"token": "x", "attestation": ev, "ciphertext": ct, "runtime_data": runtime}, nil, "app")
	expect("token and evidence", err, "token_and_evidence")
	err = n.Do(ctx, "POST", "/v1/keys/"+w.keyID+"/release", map[string]any{"attestation": map[string]any{"quote": ev.Quote}, "ciphertext": ct, "runtime_data": runtime}, nil, "app")
	expect("no nonce", err, "incomplete_attestation")
	// Another app's evidence for our key: the key does not exist for it.
	_, third := w.inst.Enroll(t)
	n3, _ := client.NewNative(third)
	_, err = n3.ReleaseAttested(ctx, w.keyID, ct, aad, evidence(runtime, goodMR, w.policyID), runtime)
	expect("other app", err, "key_not_found")
}

// fixedKey is a key source that knows one released data key.
type fixedKey string

func (f fixedKey) NewDataKey(context.Context, keysource.Request) (keysource.DataKey, error) {
	return keysource.DataKey{}, fmt.Errorf("read-only")
}
func (f fixedKey) OpenDataKey(context.Context, string, keysource.KeyRef) (string, error) {
	return string(f), nil
}

func mustB64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// TestLegacyServices: ppml attest against the BigDL AS and eHSM quote
// routes of our server prints upstream's lines and exit codes.
func TestLegacyServices(t *testing.T) {
	ctx := context.Background()
	w := setup(t, "sqlite")
	for _, typ := range []string{agent.TypeBigDL, agent.TypeEHSM} {
		c, out, errb := w.agentConfig(t, w.enclaveDir(t, goodMR, false))
		c.Type, c.PolicyID = typ, ""
		if res := agent.Run(ctx, c); res.ExitCode != 0 || !strings.Contains(out.String(), "Attestation Success!") {
			t.Fatalf("%s: exit %d\n%s\n%s", typ, res.ExitCode, out, errb)
		}
		// A debug enclave is refused by the server's strict defaults.
		c, out, errb = w.agentConfig(t, w.enclaveDir(t, goodMR, true))
		c.Type, c.PolicyID = typ, ""
		if res := agent.Run(ctx, c); res.ExitCode != 1 || !strings.Contains(out.String(), "Attestation Fail! Application killed!") {
			t.Fatalf("%s debug enclave: exit %d\n%s\n%s", typ, res.ExitCode, out, errb)
		}
		// Keys are released by the native service only.
		c, out, _ = w.agentConfig(t, w.enclaveDir(t, goodMR, false), filepath.Join(t.TempDir(), "k"))
		c.Type = typ
		if res := agent.Run(ctx, c); res.ExitCode != 1 || !strings.Contains(out.String(), "PPMLAttestationService") {
			t.Fatalf("%s with --data-key: exit %d %s", typ, res.ExitCode, out)
		}
	}
	// Every spelling upstream images set: the Scala CLI's class names, the
	// Python CLI's BigDL (its default) and capitalised quote types.
	for _, sp := range [][2]string{{"BigDL", "Gramine"}, {"bigdlremoteattestationservice", "GRAMINE"}, {"EHSMAttestationService", "gramine"}, {"ehsm", ""}} {
		c, out, errb := w.agentConfig(t, w.enclaveDir(t, goodMR, false))
		c.Type, c.QuoteType, c.PolicyID = sp[0], sp[1], ""
		if res := agent.Run(ctx, c); res.ExitCode != 0 || !strings.Contains(out.String(), "Attestation Success!") {
			t.Fatalf("ATTESTATION_TYPE=%s QUOTE_TYPE=%s: exit %d\n%s\n%s", sp[0], sp[1], res.ExitCode, out, errb)
		}
	}
	// Report data longer than 32 bytes is refused for SGX, as upstream.
	c, out, errb := w.agentConfig(t, w.enclaveDir(t, goodMR, false))
	c.Type, c.PolicyID, c.UserReportData = agent.TypeBigDL, "", strings.Repeat("x", 33)
	if res := agent.Run(ctx, c); res.ExitCode != 1 || !strings.Contains(errb.String(), "1..32 bytes") {
		t.Fatalf("long report data: %d %s %s", res.ExitCode, out, errb)
	}
}

// TestGramineKeyDelivery: a 32-byte data key cannot become a Gramine key
// (16 bytes); BigDL's legacy derivation for existing volumes can.
func TestGramineKeyDelivery(t *testing.T) {
	ctx := context.Background()
	w := setup(t, "sqlite")
	dir := w.enclaveDir(t, goodMR, false)
	c, out, errb := w.agentConfig(t, dir, "gramine:sgx_data_key")
	if res := agent.Run(ctx, c); res.ExitCode != 1 || !strings.Contains(errb.String(), "16-byte key") {
		t.Fatalf("32-byte key to gramine: %d %s %s", res.ExitCode, out, errb)
	}
	c, out, errb = w.agentConfig(t, dir, "gramine-legacy:sgx_data_key")
	if res := agent.Run(ctx, c); res.ExitCode != 0 {
		t.Fatalf("legacy delivery: %s %s", out, errb)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "keys", "sgx_data_key"))
	if string(got) != w.plaintext[:15]+"\n" {
		t.Fatalf("legacy key %q, want the first 15 characters of the data key and a newline", got)
	}
	if !strings.Contains(errb.String(), "legacy") {
		t.Fatal("legacy derivation used silently")
	}
}

// TestServerChallenge: with ATTESTATION_CHALLENGE the workload first makes
// the service quote itself over the challenge and verifies that quote.
func TestServerChallenge(t *testing.T) {
	ctx := context.Background()
	clock := &servertest.Clock{}
	inst := servertest.Start(t, servertest.Options{Clock: clock, Modify: func(c *server.Config) {
		c.AllowSimulation, c.SelfAttestation = true, "simulated"
	}})
	_, cfg := inst.Enroll(t)
	simDir := filepath.Join(inst.DataDir, "sim")
	dir := filepath.Join(t.TempDir(), "enclave")
	if err := enclave.PrepareSim(dir, simDir, "sgx", sim.Measurements{MREnclave: goodMR}); err != nil {
		t.Fatal(err)
	}
	run := func(sc *agent.ServerCheck) (agent.Result, string) {
		var out, errb bytes.Buffer
		res := agent.Run(ctx, agent.Config{URL: inst.URL, AppID: cfg.AppID, APIKey: cfg.APIKey, Type: agent.TypeEHSM,
			AttestationDir: dir, CAFile: inst.CAFile, Server: sc, Stdout: &out, Stderr: &errb})
		return res, out.String() + errb.String()
	}
	challenge := base64.StdEncoding.EncodeToString([]byte("is this really the KMS?"))
	if res, out := run(&agent.ServerCheck{Challenge: challenge, SimDir: simDir}); res.ExitCode != 0 || !strings.Contains(out, "attested itself (SIMULATED)") {
		t.Fatalf("server challenge: %d\n%s", res.ExitCode, out)
	}
	// The service's measurements can be pinned.
	mr := hex.EncodeToString(server.SelfMeasurements.MREnclave[:])
	if res, out := run(&agent.ServerCheck{Challenge: challenge, SimDir: simDir,
		Policy: &policy.Policy{MREnclave: []string{mr}, AllowSimulated: true}}); res.ExitCode != 0 {
		t.Fatalf("pinned server measurements: %s", out)
	}
	if res, out := run(&agent.ServerCheck{Challenge: challenge, SimDir: simDir,
		Policy: &policy.Policy{MREnclave: []string{hex.EncodeToString(otherMR[:])}, AllowSimulated: true}}); res.ExitCode != 1 || !strings.Contains(out, "policy refuses") {
		t.Fatalf("server with other measurements accepted: %s", out)
	}
	// A service whose quote does not chain to the trusted root is refused.
	otherSim := filepath.Join(t.TempDir(), "othersim")
	if _, err := sim.Init(otherSim); err != nil {
		t.Fatal(err)
	}
	if res, out := run(&agent.ServerCheck{Challenge: challenge, SimDir: otherSim}); res.ExitCode != 1 || !strings.Contains(out, "does not verify") {
		t.Fatalf("untrusted server quote accepted: %s", out)
	}
	if res, out := run(&agent.ServerCheck{Challenge: "not base64!"}); res.ExitCode != 1 || !strings.Contains(out, "base64") {
		t.Fatalf("bad challenge: %s", out)
	}
	// Without --self-attestation the server says so.
	plain := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) { c.AllowSimulation = true }})
	_, cfg2 := plain.Enroll(t)
	var out bytes.Buffer
	res := agent.Run(ctx, agent.Config{URL: plain.URL, AppID: cfg2.AppID, APIKey: cfg2.APIKey, Type: agent.TypeEHSM, AttestationDir: dir,
		CAFile: plain.CAFile, Server: &agent.ServerCheck{Challenge: challenge, SimDir: simDir}, Stdout: &out, Stderr: &out})
	if res.ExitCode != 1 || !strings.Contains(out.String(), "not supported") {
		t.Fatalf("server without self-attestation: %s", out.String())
	}
}

// TestUpstreamSpellings: ATTESTATION_TYPE and QUOTE_TYPE as BigDL's
// attestation.sh passes them to the Scala AttestationCLI or the Python
// attestation_cli.py (which defaults to BigDL and TDX).
func TestUpstreamSpellings(t *testing.T) {
	for _, c := range []struct{ typ, quote, wantType, wantQuote, err string }{
		{"", "", agent.TypeEHSM, "gramine", ""},
		{"EHSMAttestationService", "gramine", agent.TypeEHSM, "gramine", ""},
		{"BigDLRemoteAttestationService", "TDX", agent.TypeBigDL, "TDX", ""},
		{"BigDL", "", agent.TypeBigDL, "TDX", ""},
		{"BigDL", "Gramine", agent.TypeBigDL, "gramine", ""},
		{"bigdl", "Occlum", agent.TypeBigDL, "occlum", ""},
		{"PPMLAttestationService", "tdx", agent.TypeNative, "TDX", ""},
		{"native", "OCCLUM", agent.TypeNative, "occlum", ""},
		{"DummyAttestationService", "", "", "", "accepts every quote"},
		{"AmberAttestationService", "", "", "", "not implemented"},
		{"Other", "", "", "", `ATTESTATION_TYPE "Other" is not supported`},
		{"BigDL", "SEV", "", "", `QUOTE_TYPE "SEV" is not supported`},
	} {
		cfg := agent.Config{URL: "as:9875", AppID: "a", APIKey: "k", Type: c.typ, QuoteType: c.quote}
		err := cfg.Normalize()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q/%q: %v, want an error containing %q", c.typ, c.quote, err, c.err)
			}
			continue
		}
		if err != nil || cfg.Type != c.wantType || cfg.QuoteType != c.wantQuote {
			t.Errorf("%q/%q: %v %s %s, want %s %s", c.typ, c.quote, err, cfg.Type, cfg.QuoteType, c.wantType, c.wantQuote)
		}
	}
	for _, c := range []struct {
		v    string
		set  bool
		skip bool
	}{{"", false, true}, {"", true, true}, {"false", true, true}, {"TRUE", true, true}, {"true", true, false}} {
		if skip, warn := agent.Skip(c.v, c.set); skip != c.skip || (skip && !strings.HasPrefix(warn, "[WARN]")) {
			t.Errorf("ATTESTATION=%q (set %v): skip %v %q", c.v, c.set, skip, warn)
		}
	}
}

// A session mixes both release paths: a token from Attest, then a release
// carrying its own attestation (a new key pair, no token), then a release
// by token again, which must not present the first token with the new key.
func TestSessionMixesReleasePaths(t *testing.T) {
	ctx := context.Background()
	w := setup(t, "sqlite")
	q, err := enclave.Gramine(w.enclaveDir(t, goodMR, false))
	if err != nil {
		t.Fatal(err)
	}
	s, err := agent.NewSession(w.workload, q, w.policyID, nil)
	if err != nil {
		t.Fatal(err)
	}
	ct := mustB64(w.wrapped)
	aad := []byte{0xb5, 0xeb, 0x2d}
	want := w.plaintext
	check := func(name string, pt []byte, err error) {
		t.Helper()
		if err != nil || base64.StdEncoding.EncodeToString(pt) != want {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := s.Attest(ctx); err != nil {
		t.Fatal(err)
	}
	pt, err := s.Release(ctx, ct, aad)
	check("release with the token", pt, err)
	pt, err = s.AttestAndRelease(ctx, ct, aad, false)
	check("release with evidence", pt, err)
	pt, err = s.Release(ctx, ct, aad)
	check("release after the evidence release", pt, err)
}
