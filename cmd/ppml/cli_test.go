package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
)

var ppmlBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ppml-bin")
	if err != nil {
		panic(err)
	}
	ppmlBin = filepath.Join(dir, "ppml")
	if out, err := exec.Command("go", "build", "-o", ppmlBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building ppml: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var listenRe = regexp.MustCompile(`url=(https?://127\.0\.0\.1:\d+)`)

// startServe runs `ppml serve` as a process and returns its URL.
func startServe(t *testing.T, dataDir string, extra ...string) (*exec.Cmd, string) {
	t.Helper()
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir}, extra...)
	cmd := exec.Command(ppmlBin, args...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stderr)
	deadline := time.After(30 * time.Second)
	found := make(chan string, 1)
	go func() {
		for sc.Scan() {
			if m := listenRe.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case u := <-found:
		return cmd, u
	case <-deadline:
		t.Fatal("ppml serve did not report its listener")
	}
	return nil, ""
}

func runCLI(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(ppmlBin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), fmt.Errorf("%v: %s", err, ee.Stderr)
	}
	return string(out), err
}

// TestKill9Durability: every CreateKey and GenerateDataKey the service
// acknowledged survives kill -9, and every returned ciphertext decrypts.
func TestKill9Durability(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			dataDir := t.TempDir()
			var extra []string
			if st == "postgres" {
				extra = []string{"--db", servertest.NewPostgresDB(t)}
			}
			cmd, url := startServe(t, dataDir, extra...)
			ca := filepath.Join(dataDir, "tls", "server.crt")
			env := []string{"PPML_KMS=" + url, "PPML_CA_FILE=" + ca}

			out, err := runCLI(t, env, "enroll", "--admin-token-file", filepath.Join(dataDir, "admin.token"), "--output", "json")
			if err != nil {
				t.Fatal(err)
			}
			var app struct{ AppID, APIKey string }
			json.Unmarshal([]byte(out), &app)
			keyFile := filepath.Join(t.TempDir(), "api.key")
			os.WriteFile(keyFile, []byte(app.APIKey+"\n"), 0o600)
			env = append(env, "PPML_APP_ID="+app.AppID)
			out, err = runCLI(t, env, "key", "create", "--api-key-file", keyFile, "--output", "json")
			if err != nil {
				t.Fatal(err)
			}
			var key client.Key
			json.Unmarshal([]byte(out), &key)

			cfg := client.Config{URL: url, CAFile: ca, AppID: app.AppID, APIKey: app.APIKey}
			e, err := client.NewEHSM(cfg)
			if err != nil {
				t.Fatal(err)
			}
			type ack struct{ keyID, ct string }
			var (
				mu    sync.Mutex
				acked []ack
				wg    sync.WaitGroup
			)
			ctx, cancel := context.WithCancel(context.Background())
			for w := 0; w < 4; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := 0; ctx.Err() == nil; i++ {
						keyID := key.ID
						if i%5 == 0 {
							id, err := e.CreateKey(ctx, "EH_AES_GCM_256")
							if err != nil {
								return
							}
							keyID = id
						}
						ct, err := e.GenerateDataKeyWithoutPlaintext(ctx, keyID, 32, "dGVzdA==")
						if err != nil {
							return // the server died mid-request: not acknowledged
						}
						mu.Lock()
						acked = append(acked, ack{keyID, ct})
						mu.Unlock()
					}
				}(w)
			}
			time.Sleep(1500 * time.Millisecond)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			cancel()
			wg.Wait()
			if len(acked) < 10 {
				t.Fatalf("only %d operations acknowledged before the kill", len(acked))
			}

			_, url2 := startServe(t, dataDir, extra...)
			cfg.URL = url2
			e2, _ := client.NewEHSM(cfg)
			for _, a := range acked {
				if _, err := e2.Decrypt(context.Background(), a.keyID, a.ct, "dGVzdA=="); err != nil {
					t.Fatalf("acknowledged data key lost after kill -9: %v", err)
				}
			}
			t.Logf("%d acknowledged operations all survived kill -9", len(acked))
		})
	}
}

func TestCLIConventions(t *testing.T) {
	dataDir := t.TempDir()
	_, url := startServe(t, dataDir)
	ca := filepath.Join(dataDir, "tls", "server.crt")
	// Without --ca-file the self-signed server is refused: TLS is verified.
	if _, err := runCLI(t, nil, "enroll", "--kms", url, "--admin-token-file", filepath.Join(dataDir, "admin.token")); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("unverified TLS accepted: %v", err)
	}
	// Wrong admin token.
	bad := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(bad, []byte("not-the-admin-token-at-all"), 0o600)
	if _, err := runCLI(t, nil, "enroll", "--kms", url, "--ca-file", ca, "--admin-token-file", bad); err == nil || !strings.Contains(err.Error(), "admin token is wrong") {
		t.Fatalf("wrong admin token: %v", err)
	}
	out, err := runCLI(t, nil, "enroll", "--kms", url, "--ca-file", ca, "--admin-token-file", filepath.Join(dataDir, "admin.token"))
	if err != nil || !strings.Contains(out, "appid:") {
		t.Fatalf("text enroll: %q %v", out, err)
	}
	if _, err := runCLI(t, nil, "key", "list", "--kms", url, "--ca-file", ca, "--output", "yaml"); err == nil || !strings.Contains(err.Error(), "--output") {
		t.Fatalf("bad --output accepted: %v", err)
	}
	help, _ := runCLI(t, nil, "serve", "--help")
	for _, flag := range []string{"--addr", "--bigdl-kms-addr", "--tls-cert", "--insecure-http", "--data-dir", "--db", "--root-key-provider", "--open-enrollment",
		"--argon2-limit", "--argon2-rate-per-user", "--rsa-limit-per-app", "--pccs-limit", "--pccs-negative-ttl", "--auth-failure-delay"} {
		if !strings.Contains(help, flag) {
			t.Errorf("serve --help does not explain %s", flag)
		}
	}
}

// TestAttestCLI: ppml attest prints BigDL's verdict lines with its exit
// codes, and execs the workload with the released key in its environment.
func TestAttestCLI(t *testing.T) {
	ctx := context.Background()
	inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) { c.AllowSimulation = true }})
	_, w := inst.Enroll(t)
	as, _ := client.NewAttestation(w)
	mr := strings.Repeat("ab", 32)
	p, err := as.CreatePolicy(ctx, json.RawMessage(`{"tee":"sgx","mr_enclave":["`+mr+`"],"allow_simulated":true,"require_crl":false}`))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := client.NewNative(w)
	k, err := n.CreateKey(ctx, client.KeyOptions{ReleasePolicies: []string{p.ID}})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := client.NewEHSM(w)
	res, err := e.Call(ctx, "GenerateDataKey", map[string]any{"keyid": k.ID, "keylen": 32, "aad": "test"})
	if err != nil {
		t.Fatal(err)
	}
	wrapped := filepath.Join(t.TempDir(), "dk")
	os.WriteFile(wrapped, []byte(res["ciphertext"].(string)), 0o600)
	env := []string{"ATTESTATION=true", "ATTESTATION_URL=" + strings.TrimPrefix(inst.URL, "https://"), "APP_ID=" + w.AppID, "API_KEY=" + w.APIKey,
		"ATTESTATION_POLICYID=" + p.ID, "ATTESTATION_TYPE=PPMLAttestationService", "PPML_CA_FILE=" + inst.CAFile}

	dir := t.TempDir()
	if _, err := runCLI(t, nil, "sim", "enclave", "--dir", dir+"/good", "--sim-dir", inst.DataDir+"/sim", "--mr-enclave", mr); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, env, "attest", "--attestation-dir", dir+"/good", "--data-key", wrapped+"=env:DATA_KEY", "--", "sh", "-c", "echo key=$DATA_KEY")
	if err != nil || !strings.Contains(out, "Attestation Success!") || !strings.Contains(out, "key="+res["plaintext"].(string)) {
		t.Fatalf("attest + exec: %v\n%s", err, out)
	}
	runCLI(t, nil, "sim", "enclave", "--dir", dir+"/bad", "--sim-dir", inst.DataDir+"/sim", "--mr-enclave", strings.Repeat("cd", 32))
	out, err = runCLI(t, env, "attest", "--attestation-dir", dir+"/bad", "--data-key", wrapped+"=env:DATA_KEY", "--", "sh", "-c", "echo workload ran")
	if ee, ok := err.(interface{ Error() string }); !ok || !strings.Contains(ee.Error(), "exit status 1") || !strings.Contains(out, "Attestation Fail! Application killed!") || strings.Contains(out, "workload ran") {
		t.Fatalf("failed attestation: %v\n%s", err, out)
	}
	// ATTESTATION unset: skipped with a warning, the workload runs (attestation.sh).
	skip := exec.Command(ppmlBin, "attest", "--", "sh", "-c", "echo workload ran")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ATTESTATION=") {
			skip.Env = append(skip.Env, kv)
		}
	}
	var so, se bytes.Buffer
	skip.Stdout, skip.Stderr = &so, &se
	if err := skip.Run(); err != nil || !strings.Contains(so.String(), "[INFO] Attestation is disabled!") || !strings.Contains(so.String(), "workload ran") || !strings.Contains(se.String(), "[WARN] ATTESTATION is unset") {
		t.Fatalf("ATTESTATION unset: %v\n%s\n%s", err, so.String(), se.String())
	}
	// ... but no key is ever released without attestation.
	if out, err := runCLI(t, []string{"ATTESTATION=false"}, "attest", "--data-key", wrapped+"=env:DATA_KEY", "--", "sh", "-c", "echo workload ran"); err == nil || strings.Contains(out, "workload ran") {
		t.Fatalf("ATTESTATION=false with --data-key: %v %s", err, out)
	}
	out, _ = runCLI(t, []string{"ATTESTATION=true", "ATTESTATION_URL=", "APP_ID=x", "API_KEY=y"}, "attest")
	if !strings.Contains(out, "[ERROR] Attestation is enabled, but ATTESTATION_URL is empty!") || !strings.Contains(out, "[INFO] PPML Application Exit!") {
		t.Fatalf("missing ATTESTATION_URL: %q", out)
	}
}

// TestEncryptWithKMS: ppml encrypt/decrypt with data keys from the KMS, in
// both file formats; decryption finds the key from the header or .meta.
func TestEncryptWithKMS(t *testing.T) {
	ctx := context.Background()
	inst := servertest.Start(t, servertest.Options{})
	e, cfg := inst.Enroll(t)
	keyID, err := e.CreateKey(ctx, "EH_AES_GCM_256")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "api.key")
	os.WriteFile(keyFile, []byte(cfg.APIKey), 0o600)
	in := filepath.Join(dir, "data")
	os.MkdirAll(in, 0o755)
	os.WriteFile(filepath.Join(in, "people.csv"), []byte("name,age,job\nalice,30,Developer\n"), 0o644)
	env := []string{"PPML_KMS=" + inst.URL, "PPML_CA_FILE=" + inst.CAFile, "PPML_APP_ID=" + cfg.AppID}
	for _, format := range []string{"ppml", "bigdl"} {
		enc, dec := filepath.Join(dir, format+"-enc"), filepath.Join(dir, format+"-dec")
		if out, err := runCLI(t, env, "encrypt", "--in", in, "--out", enc, "--format", format, "--api-key-file", keyFile, "--key-id", keyID, "-q"); err != nil {
			t.Fatalf("%s encrypt: %v %s", format, err, out)
		}
		if out, err := runCLI(t, env, "decrypt", "--in", enc, "--out", dec, "--api-key-file", keyFile, "-q"); err != nil {
			t.Fatalf("%s decrypt: %v %s", format, err, out)
		}
		got, _ := os.ReadFile(filepath.Join(dec, "people.csv"))
		if string(got) != "name,age,job\nalice,30,Developer\n" {
			t.Fatalf("%s round trip: %q", format, got)
		}
	}
	if _, err := runCLI(t, env, "encrypt", "--in", in, "--out", filepath.Join(dir, "x"), "--api-key-file", keyFile, "--primary-key-plaintext-file", keyFile, "--kms", inst.URL); err == nil || !strings.Contains(err.Error(), "one key source") {
		t.Fatalf("two key sources: %v", err)
	}
}

// TestExtraListeners: --bigdl-kms-addr and --bigdl-as-addr serve BigDL's
// routes on their own ports, over the same TLS certificate.
func TestExtraListeners(t *testing.T) {
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	kmsAddr, asAddr := free(), free()
	dataDir := t.TempDir()
	startServe(t, dataDir, "--bigdl-kms-addr", kmsAddr, "--bigdl-as-addr", asAddr)
	h, err := client.HTTPClient(filepath.Join(dataDir, "tls", "server.crt"), 0)
	if err != nil {
		t.Fatal(err)
	}
	for addr, banner := range map[string]string{kmsAddr: "welcome to bigdl-key-management-server", asAddr: "Welcome to BigDL Remote Attestation Service"} {
		resp, err := h.Get("https://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), banner) {
			t.Errorf("GET / on %s: %q, want %q", addr, body, banner)
		}
	}
}

// TestDecryptNativeAESCBC: BigDL's unauthenticated variant is read only on
// explicit request, with the plain-text primary key as its key.
func TestDecryptNativeAESCBC(t *testing.T) {
	dir := t.TempDir()
	key := make([]byte, 32)
	rand.Read(key)
	keyText := base64.StdEncoding.EncodeToString(key)
	keyFile := filepath.Join(dir, "primary.key")
	os.WriteFile(keyFile, []byte(keyText+"\n"), 0o600)
	pt := []byte("name,age,job\nalice,30,Developer\n")
	block, _ := aes.NewCipher(key)
	pad := aes.BlockSize - len(pt)%aes.BlockSize
	padded := append(append([]byte{}, pt...), bytes.Repeat([]byte{byte(pad)}, pad)...)
	iv := make([]byte, 16)
	rand.Read(iv)
	ct := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, padded)
	in := filepath.Join(dir, "part-0.csv.cbc")
	os.WriteFile(in, append(iv, ct...), 0o644)
	out := filepath.Join(dir, "part-0.csv")
	if _, err := runCLI(t, nil, "decrypt", "--in", in, "--out", out, "--format", "bigdl-nativeaescbc", "--primary-key-plaintext-file", keyFile); err == nil || !strings.Contains(err.Error(), "--allow-unauthenticated") {
		t.Fatalf("without --allow-unauthenticated: %v", err)
	}
	if _, err := runCLI(t, nil, "decrypt", "-q", "--in", in, "--out", out, "--format", "bigdl-nativeaescbc", "--allow-unauthenticated", "--primary-key-plaintext-file", keyFile); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, pt) {
		t.Fatalf("got %q", got)
	}
	if _, err := runCLI(t, nil, "encrypt", "--in", out, "--out", filepath.Join(dir, "x.cbc"), "--format", "bigdl-nativeaescbc", "--primary-key-plaintext-file", keyFile); err == nil || !strings.Contains(err.Error(), "never written") {
		t.Fatalf("encrypt in nativeaescbc: %v", err)
	}
}

// TestEnrollBigDLUser: the one-time step of a BigDL deployment. ppml enroll
// --bigdl-user creates the user with a generated token kept in a 0600 file;
// BigDL's client then uses it unchanged.
func TestEnrollBigDLUser(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{})
	dir := t.TempDir()
	admin := filepath.Join(dir, "admin.token")
	os.WriteFile(admin, []byte(inst.AdminToken+"\n"), 0o600)
	tokenFile := filepath.Join(dir, "alice.token")
	env := []string{"PPML_KMS=" + inst.URL, "PPML_CA_FILE=" + inst.CAFile}
	if _, err := runCLI(t, env, "enroll", "--admin-token-file", filepath.Join(dir, "none"), "--bigdl-user", "alice", "--bigdl-token-file", tokenFile); err == nil || !strings.Contains(err.Error(), "--open-enrollment") {
		t.Fatalf("without the admin token: %v", err)
	}
	if _, err := os.Stat(tokenFile); !os.IsNotExist(err) {
		t.Fatalf("a refused enrollment left a token file: %v", err)
	}
	out, err := runCLI(t, env, "enroll", "--admin-token-file", admin, "--bigdl-user", "alice", "--bigdl-token-file", tokenFile, "--output", "json")
	if err != nil || !strings.Contains(out, `"token_file_created": true`) {
		t.Fatalf("enroll --bigdl-user: %v %s", err, out)
	}
	st, err := os.Stat(tokenFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", err, st.Mode())
	}
	tok, _ := os.ReadFile(tokenFile)
	token := strings.TrimSpace(string(tok))
	// BigDLKeyManagementService's requests.
	h, _ := client.HTTPClient(inst.CAFile, 0)
	resp, err := h.Post(inst.URL+"//primaryKey/pk1?token="+token+"&user=alice", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "generate primaryKey [pk1] successfully!" {
		t.Fatalf("BigDL client with the enrolled user: %d %s", resp.StatusCode, body)
	}
	// Again: the user exists (409), the token file is kept.
	if _, err := runCLI(t, env, "enroll", "--admin-token-file", admin, "--bigdl-user", "alice", "--bigdl-token-file", tokenFile); err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("second enroll: %v", err)
	}
	if again, _ := os.ReadFile(tokenFile); string(again) != string(tok) {
		t.Fatal("token file changed")
	}
}
