package sigstruct

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/ppml-project/ppml/quote/policy"
)

// ErrDebug is returned for a debug enclave unless debug is allowed.
var ErrDebug = errors.New("the enclave is signed as a debug enclave (ATTRIBUTES.DEBUG; sgx.debug = true in the Gramine manifest): the host can read and change its memory, so its keys are not protected. Sign it with sgx.debug = false, or pass --allow-debug for a test policy that accepts debug enclaves (never in production)")

// Policy returns the attestation policy that accepts exactly this enclave
// (MRENCLAVE), signed by this key (MRSIGNER), with this product id and at
// least this SVN. A debug enclave is refused unless allowDebug; the policy
// then sets allow_debug.
func (s *Sigstruct) Policy(allowDebug bool) (*policy.Policy, error) {
	if s.Debug() && !allowDebug {
		return nil, ErrDebug
	}
	mre, mrs := s.Hex()
	prod, svn := s.ISVProdID, s.ISVSVN
	p := &policy.Policy{
		TEE:        "sgx",
		MREnclave:  []string{mre},
		MRSigner:   []string{mrs},
		ISVProdID:  &prod,
		MinISVSVN:  &svn,
		AllowDebug: s.Debug(),
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("sigstruct: derived policy: %w", err)
	}
	return p, nil
}

// BigDL policy types this package renders (BigDL AS registerPolicy).
const (
	BigDLMREnclave = "SGXMREnclavePolicy"
	BigDLMRSigner  = "SGXMRSignerPolicy"
)

// BigDLPolicy returns the body of a BigDL Attestation Service
// registerPolicy request for this enclave without the appID and apiKey
// fields: SGXMREnclavePolicy (this enclave only) or SGXMRSignerPolicy
// (every enclave of this signer and product id). BigDL's policies do not
// check debug, so a debug enclave is refused unless allowDebug.
func (s *Sigstruct) BigDLPolicy(policyType string, allowDebug bool) (map[string]string, error) {
	if s.Debug() && !allowDebug {
		return nil, ErrDebug
	}
	mre, mrs := s.Hex()
	switch policyType {
	case BigDLMREnclave, "":
		return map[string]string{"policyType": BigDLMREnclave, "mrEnclave": mre}, nil
	case BigDLMRSigner:
		return map[string]string{"policyType": BigDLMRSigner, "mrSigner": mrs, "isvProdID": strconv.Itoa(int(s.ISVProdID))}, nil
	}
	return nil, fmt.Errorf("BigDL policy type %q: want %s or %s", policyType, BigDLMREnclave, BigDLMRSigner)
}

// Summary is what a SIGSTRUCT says, for display (gramine-sgx-sigstruct-view).
type Summary struct {
	MREnclave  string     `json:"mr_enclave"`
	MRSigner   string     `json:"mr_signer"`
	ISVProdID  uint16     `json:"isv_prod_id"`
	ISVSVN     uint16     `json:"isv_svn"`
	Debug      bool       `json:"debug_enclave"`
	Date       string     `json:"date"`
	Attributes Attributes `json:"attributes"`
	MiscSelect uint32     `json:"misc_select"`
}

// Summary returns the displayed fields.
func (s *Sigstruct) Summary() Summary {
	mre, mrs := s.Hex()
	return Summary{MREnclave: mre, MRSigner: mrs, ISVProdID: s.ISVProdID, ISVSVN: s.ISVSVN, Debug: s.Debug(),
		Date: s.Date.Format("2006-01-02"), Attributes: s.Attributes, MiscSelect: s.MiscSelect}
}

// ParseFile reads and verifies a .sig file.
func ParseFile(path string) (*Sigstruct, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
