package sim

import (
	"fmt"
	"strconv"

	"github.com/ppml-project/ppml/quote/abi"
)

// The measurement options of a simulated quote per TEE, named as the flags
// of "ppml sim quote" and "ppml sim enclave".
var (
	sgxOptions = []string{"mr-enclave", "mr-signer", "isv-prod-id", "isv-svn"}
	tdxOptions = []string{"mr-td", "rtmr0", "rtmr1", "rtmr2", "rtmr3"}
)

// ParseMeasurements reads the measurements of a simulated quote for tee
// ("sgx" or "tdx") from the options a user gave: option name → value as
// typed, for the options given only (other names are ignored). An option
// of the other TEE is refused rather than dropped; omitted measurements are
// zero. debug sets the DEBUG attribute.
func ParseMeasurements(tee string, given map[string]string, debug bool) (abi.TEE, Measurements, error) {
	m := Measurements{Debug: debug}
	var (
		t     abi.TEE
		other []string
		wrong string
		hexes []hexOption
	)
	switch tee {
	case "sgx":
		t, other = abi.SGX, tdxOptions
		wrong = "applies to TDX; with --tee sgx use --mr-enclave, --mr-signer, --isv-prod-id, --isv-svn"
		hexes = []hexOption{{"mr-enclave", m.MREnclave[:]}, {"mr-signer", m.MRSigner[:]}}
	case "tdx":
		t, other = abi.TDX, sgxOptions
		wrong = "applies to SGX; with --tee tdx use --mr-td and --rtmr0..--rtmr3"
		hexes = []hexOption{{"mr-td", m.MRTD[:]}}
		for i := range m.RTMR {
			hexes = append(hexes, hexOption{fmt.Sprintf("rtmr%d", i), m.RTMR[i][:]})
		}
	default:
		return t, Measurements{}, fmt.Errorf("--tee %q is not supported: use sgx or tdx", tee)
	}
	for _, o := range other {
		if _, ok := given[o]; ok {
			return t, Measurements{}, fmt.Errorf("--%s %s", o, wrong)
		}
	}
	for _, h := range hexes {
		b, err := ParseHex("--"+h.name, given[h.name], len(h.dst), true)
		if err != nil {
			return t, Measurements{}, err
		}
		copy(h.dst, b)
	}
	if t == abi.SGX {
		for _, n := range []struct {
			name string
			dst  *uint16
		}{{"isv-prod-id", &m.ISVProdID}, {"isv-svn", &m.ISVSVN}} {
			if v, ok := given[n.name]; ok {
				u, err := strconv.ParseUint(v, 0, 16)
				if err != nil {
					return t, Measurements{}, fmt.Errorf("--%s: %q is not a number from 0 to 65535", n.name, v)
				}
				*n.dst = uint16(u)
			}
		}
	}
	return t, m, nil
}

// hexOption is a hex measurement option and where its bytes go.
type hexOption struct {
	name string
	dst  []byte
}
