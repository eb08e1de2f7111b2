package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/enclave/sigstruct"
	"github.com/ppml-project/ppml/k8s/k8stest"
	"github.com/ppml-project/ppml/quote/sim"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
)

// TestEnclaveKeyGenerateCLI: the key is written 0600, never printed, never
// overwritten, loads as an SGX key, and --apply stores it as a Secret.
func TestEnclaveKeyGenerateCLI(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "enclave-key.pem")
	out, err := runCLI(t, nil, "enclave", "key", "generate", "--out", path)
	if err != nil || !strings.Contains(out, "mr_signer: ") {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Contains(out, "PRIVATE KEY") {
		t.Fatal("key printed")
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	k, err := sigstruct.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mrs := sigstruct.MRSigner(&k.PublicKey)
	if !strings.Contains(out, "mr_signer: "+hexOf(mrs[:])) {
		t.Fatalf("printed MRSIGNER is not the key's: %s", out)
	}
	before, _ := os.ReadFile(path)
	if _, err := runCLI(t, nil, "enclave", "key", "generate", "--out", path); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("overwrite: %v", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("key replaced")
	}
	if _, err := runCLI(t, nil, "enclave", "key", "generate"); err == nil || !strings.Contains(err.Error(), "--out FILE is required") {
		t.Fatalf("no --out: %v", err)
	}

	c := k8stest.Start(t)
	p2 := filepath.Join(dir, "k2.pem")
	out, err = runCLI(t, []string{"KUBECONFIG="}, "enclave", "key", "generate", "--out", p2, "--apply", "--kubeconfig", c.Kubeconfig)
	if err != nil || !strings.Contains(out, "secret/enclave-key created in namespace default") || strings.Contains(out, "PRIVATE KEY") {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	s, err := c.Clientset.CoreV1().Secrets("default").Get(context.Background(), "enclave-key", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	file, _ := os.ReadFile(p2)
	if string(s.Data["enclave-key.pem"]) != string(file) {
		t.Fatal("Secret enclave-key.pem differs from the file")
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// TestPolicyFromSigstructCLI: the policy printed and registered from a .sig
// is the enclave's; bad files are refused precisely.
func TestPolicyFromSigstructCLI(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) { c.AllowSimulation = true }})
	_, w := inst.Enroll(t)
	s, err := sim.Load(filepath.Join(inst.DataDir, "sim"))
	if err != nil {
		t.Fatal(err)
	}
	var mre [32]byte
	copy(mre[:], strings.Repeat("\x42", 32))
	sig, m, err := s.SignEnclave(sigstruct.GramineFields(mre, 5, 2, false))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sigPath := filepath.Join(dir, "ppml.sig")
	os.WriteFile(sigPath, sig, 0o644)

	out, err := runCLI(t, nil, "policy", "from-sigstruct", sigPath)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"tee":"sgx","mr_enclave":["` + strings.Repeat("42", 32) + `"],"mr_signer":["` + hexOf(m.MRSigner[:]) + `"],"isv_prod_id":5,"min_isv_svn":2}`
	if compact(t, out) != compact(t, want) {
		t.Fatalf("policy\n%s\nwant\n%s", out, want)
	}
	out, err = runCLI(t, nil, "policy", "from-sigstruct", sigPath, "--format", "bigdl")
	if err != nil || compact(t, out) != `{"mrEnclave":"`+strings.Repeat("42", 32)+`","policyType":"SGXMREnclavePolicy"}` {
		t.Fatalf("bigdl: %v\n%s", err, out)
	}
	env := []string{"PPML_KMS=" + inst.URL, "PPML_APP_ID=" + w.AppID, "PPML_API_KEY=" + w.APIKey, "PPML_CA_FILE=" + inst.CAFile}
	out, err = runCLI(t, env, "policy", "from-sigstruct", sigPath, "--apply", "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		PolicyID  string            `json:"policy_id"`
		Sigstruct sigstruct.Summary `json:"sigstruct"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.PolicyID == "" || res.Sigstruct.ISVSVN != 2 {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	as, _ := client.NewAttestation(w)
	stored, err := as.GetPolicy(context.Background(), res.PolicyID)
	if err != nil || compact(t, string(stored.Policy)) != compact(t, want) {
		t.Fatalf("stored policy %s, %v", stored.Policy, err)
	}

	dsig, _, err := s.SignEnclave(sigstruct.GramineFields(mre, 5, 2, true))
	if err != nil {
		t.Fatal(err)
	}
	debugPath := filepath.Join(dir, "debug.sig")
	os.WriteFile(debugPath, dsig, 0o644)
	truncPath := filepath.Join(dir, "trunc.sig")
	os.WriteFile(truncPath, sig[:1000], 0o644)
	tampered := append([]byte(nil), sig...)
	tampered[961] ^= 0xff
	tamperedPath := filepath.Join(dir, "tampered.sig")
	os.WriteFile(tamperedPath, tampered, 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{debugPath}, "debug enclave"},
		{[]string{truncPath}, "1000 bytes, a SIGSTRUCT has 1808: the file is truncated"},
		{[]string{tamperedPath}, "the RSA signature does not verify"},
		{[]string{sigPath, "--format", "bigdl", "--apply"}, "choose one"},
		{[]string{sigPath, "--format", "xml"}, `--format "xml"`},
		{[]string{sigPath, "--bigdl-policy-type", "SGXMRSignerPolicy"}, "needs --format bigdl"},
	} {
		if _, err := runCLI(t, nil, append([]string{"policy", "from-sigstruct"}, tc.args...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	if out, err := runCLI(t, nil, "policy", "from-sigstruct", debugPath, "--allow-debug"); err != nil || !strings.Contains(out, `"allow_debug": true`) {
		t.Fatalf("--allow-debug: %v\n%s", err, out)
	}
}

func compact(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v: %q", err, s)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestSimSigstructCLI: ppml sim sigstruct writes a .sig that ppml policy
// from-sigstruct accepts, with the printed MRSIGNER.
func TestSimSigstructCLI(t *testing.T) {
	dir := t.TempDir()
	simDir := filepath.Join(dir, "sim")
	if _, err := runCLI(t, nil, "sim", "init", "--sim-dir", simDir); err != nil {
		t.Fatal(err)
	}
	sigPath := filepath.Join(dir, "app.sig")
	mre := strings.Repeat("5a", 32)
	out, err := runCLI(t, nil, "sim", "sigstruct", "--sim-dir", simDir, "--mr-enclave", mre, "--isv-prod-id", "3", "--isv-svn", "7", "--out", sigPath)
	if err != nil || !strings.Contains(out, "SIMULATED") {
		t.Fatalf("%v\n%s", err, out)
	}
	i := strings.Index(out, "mr_signer: ")
	if i < 0 {
		t.Fatalf("no mr_signer in %q", out)
	}
	mrs := strings.TrimSpace(out[i+len("mr_signer: "):])
	pol, err := runCLI(t, nil, "policy", "from-sigstruct", sigPath)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"tee":"sgx","mr_enclave":["` + mre + `"],"mr_signer":["` + mrs + `"],"isv_prod_id":3,"min_isv_svn":7}`
	if compact(t, pol) != compact(t, want) {
		t.Fatalf("policy %s, want %s", pol, want)
	}
	if _, err := runCLI(t, nil, "sim", "sigstruct", "--sim-dir", simDir, "--mr-enclave", "abcd", "--out", sigPath+"2"); err == nil || !strings.Contains(err.Error(), "32") {
		t.Fatalf("short MRENCLAVE: %v", err)
	}
}
