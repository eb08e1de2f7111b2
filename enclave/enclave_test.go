package enclave

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/sim"
	"github.com/ppml-project/ppml/quote/verify"
)

func TestSimulatedGramineDirectory(t *testing.T) {
	simDir := filepath.Join(t.TempDir(), "sim")
	s, err := sim.Init(simDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "attestation")
	m := sim.Measurements{MREnclave: [32]byte{1, 2, 3}, MRSigner: [32]byte{9}, ISVProdID: 1, ISVSVN: 3}
	if err := PrepareSim(dir, simDir, "sgx", m); err != nil {
		t.Fatal(err)
	}
	q, err := Gramine(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !q.Simulated() || !strings.Contains(q.Describe(), "SIMULATED") {
		t.Fatal("a simulated enclave does not say so")
	}
	var rd [64]byte
	copy(rd[:], "fresh report data")
	raw, err := q.Quote(rd)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := abi.ParseQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.SGXBody == nil || parsed.SGXBody.ReportData != rd || parsed.SGXBody.MREnclave != m.MREnclave {
		t.Fatal("quote does not carry the report data and measurements")
	}
	col, _ := s.Collateral(abi.SGX)
	res, err := verify.Verify(raw, col, s.VerifyOptions(time.Now))
	if err != nil || !res.Verified || !res.Simulated {
		t.Fatalf("simulated quote does not verify under the sim root: %v %+v", err, res)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "user_report_data")); !bytes.Equal(got, rd[:]) {
		t.Fatal("report data not written through user_report_data")
	}
	// Keys: 16 bytes only, like Gramine.
	if err := DeliverGramineKey(dir, "sgx_data_key", make([]byte, 32)); err == nil {
		t.Fatal("32-byte Gramine key accepted")
	}
	if err := DeliverGramineKey(dir, "sgx_data_key", bytes.Repeat([]byte{7}, 16)); err != nil {
		t.Fatal(err)
	}
	if err := DeliverGramineKey(dir, "../escape", bytes.Repeat([]byte{7}, 16)); err == nil {
		t.Fatal("key name with a path accepted")
	}
}

func TestGramineWithoutAttestation(t *testing.T) {
	dir := t.TempDir()
	if _, err := Gramine(dir); err == nil || !strings.Contains(err.Error(), "attestation_type") {
		t.Fatalf("missing /dev/attestation: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "attestation_type"), []byte("none"), 0o644)
	if _, err := Gramine(dir); err == nil || !strings.Contains(err.Error(), "noattest") {
		t.Fatalf("attestation_type none: %v", err)
	}
	if _, err := TDX(filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "configfs-tsm") {
		t.Fatalf("missing configfs-tsm: %v", err)
	}
	if err := PrepareSim(filepath.Join(dir, "x"), filepath.Join(dir, "nosim"), "sgx", sim.Measurements{}); err == nil || !strings.Contains(err.Error(), "ppml sim init") {
		t.Fatalf("missing sim dir: %v", err)
	}
}
