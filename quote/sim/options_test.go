package sim

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/quote/abi"
)

func TestParseMeasurementsSGX(t *testing.T) {
	mr := strings.Repeat("ab", 32)
	tee, m, err := ParseMeasurements("sgx", map[string]string{"mr-enclave": mr, "isv-prod-id": "3", "isv-svn": "0x10", "out": "q.bin"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if tee != abi.SGX || m.MREnclave != [32]byte(bytes.Repeat([]byte{0xab}, 32)) || m.MRSigner != [32]byte{} ||
		m.ISVProdID != 3 || m.ISVSVN != 16 || !m.Debug || m.MRTD != [48]byte{} {
		t.Fatalf("%s %+v", tee, m)
	}
}

func TestParseMeasurementsTDX(t *testing.T) {
	tee, m, err := ParseMeasurements("tdx", map[string]string{"mr-td": strings.Repeat("cd", 48), "rtmr3": strings.Repeat("ef", 48)}, false)
	if err != nil {
		t.Fatal(err)
	}
	if tee != abi.TDX || m.MRTD[0] != 0xcd || m.RTMR[3][47] != 0xef || m.RTMR[0] != [48]byte{} || m.Debug || m.MREnclave != [32]byte{} {
		t.Fatalf("%s %+v", tee, m)
	}
}

func TestParseMeasurementsRefuses(t *testing.T) {
	for _, c := range []struct {
		tee   string
		given map[string]string
		want  string
	}{
		{"sev", nil, `--tee "sev" is not supported: use sgx or tdx`},
		{"sgx", map[string]string{"rtmr2": ""}, "--rtmr2 applies to TDX; with --tee sgx use --mr-enclave, --mr-signer, --isv-prod-id, --isv-svn"},
		{"tdx", map[string]string{"isv-svn": "0"}, "--isv-svn applies to SGX; with --tee tdx use --mr-td and --rtmr0..--rtmr3"},
		{"sgx", map[string]string{"mr-signer": "zz"}, `--mr-signer: "zz" is not hex`},
		{"sgx", map[string]string{"mr-enclave": "abcd"}, "--mr-enclave: 2 bytes, want 32 (64 hex digits)"},
		{"tdx", map[string]string{"rtmr1": strings.Repeat("00", 32)}, "--rtmr1: 32 bytes, want 48 (96 hex digits)"},
		{"sgx", map[string]string{"isv-prod-id": "70000"}, `--isv-prod-id: "70000" is not a number from 0 to 65535`},
	} {
		if _, _, err := ParseMeasurements(c.tee, c.given, false); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s %v: %v, want %q", c.tee, c.given, err, c.want)
		}
	}
}
