package attestation

import (
	"slices"
	"testing"

	"github.com/ppml-project/ppml/quote/verify"
)

// The claims carry the result's advisories and TCB status (the simulated
// platform is always UpToDate with none, so this needs a made-up result).
func TestClaimsOfKeepsAdvisories(t *testing.T) {
	st := verify.StatusOutOfDate
	c := claimsOf(&verify.Result{TEE: "sgx", AdvisoryIDs: []string{"INTEL-SA-00001", "INTEL-SA-00002"}, TCBStatus: &st})
	if !slices.Equal(c.AdvisoryIDs, []string{"INTEL-SA-00001", "INTEL-SA-00002"}) || c.TCBStatus != st {
		t.Fatalf("claims %+v", c)
	}
	c = claimsOf(&verify.Result{TEE: "sgx"})
	if c.AdvisoryIDs == nil || len(c.AdvisoryIDs) != 0 || c.TCBStatus != "" {
		t.Fatalf("claims of a result without advisories or status: %+v", c)
	}
}
