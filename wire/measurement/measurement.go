// Package measurement holds the attested values of a quote, as the
// verifier reports them (quote/verify.Result) and attestation tokens carry
// them (wire/token.Claims): one definition for both.
package measurement

// Measurements are the attested values of the quote, lower-case hex. SGX
// fills mr_enclave, mr_signer, isv_prod_id and isv_svn; TDX fills mr_td,
// rtmr0..3, mr_seam, mr_config_id, mr_owner, mr_owner_config and
// td_attributes. report_data is the full 64-byte field (empty only when
// the quote did not parse, which no token carries).
type Measurements struct {
	MREnclave     string  `json:"mr_enclave,omitempty"`
	MRSigner      string  `json:"mr_signer,omitempty"`
	ISVProdID     *uint16 `json:"isv_prod_id,omitempty"`
	ISVSVN        *uint16 `json:"isv_svn,omitempty"`
	MRTD          string  `json:"mr_td,omitempty"`
	RTMR0         string  `json:"rtmr0,omitempty"`
	RTMR1         string  `json:"rtmr1,omitempty"`
	RTMR2         string  `json:"rtmr2,omitempty"`
	RTMR3         string  `json:"rtmr3,omitempty"`
	MRSeam        string  `json:"mr_seam,omitempty"`
	MRConfigID    string  `json:"mr_config_id,omitempty"`
	MROwner       string  `json:"mr_owner,omitempty"`
	MROwnerConfig string  `json:"mr_owner_config,omitempty"`
	TDAttributes  string  `json:"td_attributes,omitempty"`
	ReportData    string  `json:"report_data,omitempty"`
}
