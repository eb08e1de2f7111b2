//go:build cgo

package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
)

// TestSQLAttestedCLI: ppml sql --attest in a simulated enclave reads an input
// encrypted by the data owner under a bound key; the owner decrypts the
// result; an enclave with other measurements gets nothing and writes nothing.
func TestSQLAttestedCLI(t *testing.T) {
	ctx := context.Background()
	inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) { c.AllowSimulation = true }})
	_, w := inst.Enroll(t)
	_, d := inst.Enroll(t)
	as, _ := client.NewAttestation(w)
	mr := strings.Repeat("5a", 32)
	p, err := as.CreatePolicy(ctx, json.RawMessage(`{"tee":"sgx","mr_enclave":["`+mr+`"],"allow_simulated":true}`))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := client.NewNative(w)
	k, err := n.CreateKey(ctx, client.KeyOptions{ReleasePolicies: []string{p.ID}, Decrypters: []string{d.AppID}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	wKey, dKey := filepath.Join(dir, "w.key"), filepath.Join(dir, "d.key")
	os.WriteFile(wKey, []byte(w.APIKey), 0o600)
	os.WriteFile(dKey, []byte(d.APIKey), 0o600)
	os.WriteFile(filepath.Join(dir, "people.csv"), []byte("name,age,job\nada,30,Developer\nken,50,Developer\nbob,25,Tester\n"), 0o644)
	env := []string{"PPML_KMS=" + inst.URL, "PPML_CA_FILE=" + inst.CAFile}
	if out, err := runCLI(t, env, "encrypt", "-q", "--in", filepath.Join(dir, "people.csv"), "--key-id", k.ID, "--app-id", d.AppID, "--api-key-file", dKey); err != nil {
		t.Fatalf("owner encrypt: %v %s", err, out)
	}
	enc := filepath.Join(dir, "people.csv.ppml")
	query := "SELECT name FROM people WHERE job = 'Developer' AND age BETWEEN 20 AND 40"
	for name, m := range map[string]string{"good": mr, "other": strings.Repeat("6b", 32)} {
		if _, err := runCLI(t, nil, "sim", "enclave", "--dir", filepath.Join(dir, name), "--sim-dir", filepath.Join(inst.DataDir, "sim"), "--mr-enclave", m); err != nil {
			t.Fatal(err)
		}
	}
	sql := func(enclaveDir, out string) (string, error) {
		return runCLI(t, env, "sql", "--attest", "--attestation-dir", enclaveDir, "--policy-id", p.ID, "--output-key-id", k.ID,
			"--app-id", w.AppID, "--api-key-file", wKey, "--input", "people="+enc, "--query", query, "--output", out)
	}
	if out, err := sql(filepath.Join(dir, "other"), filepath.Join(dir, "refused.csv.ppml")); err == nil || !strings.Contains(err.Error(), "mr_enclave") {
		t.Fatalf("other measurements: %v %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "refused.csv.ppml")); err == nil {
		t.Fatal("a refused enclave wrote an output")
	}
	res := filepath.Join(dir, "result.csv.ppml")
	if out, err := sql(filepath.Join(dir, "good"), res); err != nil {
		t.Fatalf("attested sql: %v %s", err, out)
	}
	// The workload app alone cannot read the result; the data owner can.
	if _, err := runCLI(t, env, "decrypt", "-q", "--in", res, "--out", filepath.Join(dir, "w.csv"), "--app-id", w.AppID, "--api-key-file", wKey); err == nil {
		t.Fatal("the workload app decrypted the result without attestation")
	}
	if out, err := runCLI(t, env, "decrypt", "-q", "--in", res, "--out", filepath.Join(dir, "result.csv"), "--app-id", d.AppID, "--api-key-file", dKey); err != nil {
		t.Fatalf("owner decrypt: %v %s", err, out)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "result.csv")); string(got) != "name\nada\n" {
		t.Fatalf("result %q", got)
	}
}
