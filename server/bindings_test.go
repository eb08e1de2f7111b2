package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server/servertest"
)

// A binding means what it says: only keys whose release works can be bound
// (AES keys: their data keys are released HPKE-sealed to an attested
// workload), only to policies that pin the code, and a bound key reveals
// nothing to its API key alone.
func TestBindingsMeanWhatTheySay(t *testing.T) {
	ctx := context.Background()
	inst := servertest.Start(t, servertest.Options{})
	_, cfg := inst.Enroll(t)
	n, _ := client.NewNative(cfg)
	att, _ := client.NewAttestation(cfg)
	mr := strings.Repeat("ab", 32)
	policy := func(doc string) string {
		t.Helper()
		p, err := att.CreatePolicy(ctx, json.RawMessage(doc))
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		return p.ID
	}
	pinned := policy(`{"tee":"sgx","mr_enclave":["` + mr + `"]}`)

	// Asymmetric keys cannot be released, so they cannot be bound (they
	// used to be, and then signed with the API key alone).
	for _, spec := range []string{"EH_EC_P256", "EH_RSA_2048", "EH_RSA_3072"} {
		_, err := n.CreateKey(ctx, client.KeyOptions{Spec: spec, ReleasePolicies: []string{pinned}})
		if err == nil || !strings.Contains(err.Error(), "unbindable_spec") || !strings.Contains(err.Error(), "AES") {
			t.Errorf("binding %s: %v", spec, err)
		}
	}
	r := newRaw(t, inst, cfg)
	e := r.call("CreateKey", `{"keyspec":"EH_EC_P256","origin":"EH_INTERNAL_KEY","release_policies":"`+pinned+`"}`)
	if e.Code != 400 || !strings.Contains(e.Message, "cannot be bound") {
		t.Errorf("eHSM CreateKey bound EC: %d %s", e.Code, e.Message)
	}

	// Policies that pin nothing cannot bind a key.
	for doc, want := range map[string]string{
		`{}`:                            "pins no measurement",
		`{"allow_simulated":true}`:      "pins no measurement",
		`{"tee":"sgx","min_isv_svn":3}`: "pins no measurement",
		`{"tee":"sgx","mr_signer":["` + mr + `"]}`: "isv_prod_id",
	} {
		_, err := n.CreateKey(ctx, client.KeyOptions{ReleasePolicies: []string{policy(doc)}})
		if err == nil || !strings.Contains(err.Error(), "policy_pins_nothing") || !strings.Contains(err.Error(), want) {
			t.Errorf("binding to %s: %v", doc, err)
		}
	}
	for _, doc := range []string{
		`{"tee":"sgx","mr_signer":["` + mr + `"],"isv_prod_id":1}`,
		`{"tee":"tdx","mr_td":["` + strings.Repeat("cd", 48) + `"]}`,
		`{"tee":"tdx","rtmr2":["` + strings.Repeat("cd", 48) + `"]}`,
	} {
		if _, err := n.CreateKey(ctx, client.KeyOptions{ReleasePolicies: []string{policy(doc)}}); err != nil {
			t.Errorf("binding to %s: %v", doc, err)
		}
	}

	// A bound AES key: every operation revealing plaintext wants attestation.
	k, err := n.CreateKey(ctx, client.KeyOptions{ReleasePolicies: []string{pinned}})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := n.Encrypt(ctx, k.ID, []byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Decrypt(ctx, k.ID, ct, nil); err == nil || !strings.Contains(err.Error(), "attestation_required") {
		t.Errorf("native decrypt of a bound key: %v", err)
	}
	b64 := base64.StdEncoding.EncodeToString(ct)
	if e := r.call("Decrypt", `{"keyid":"`+k.ID+`","ciphertext":"`+b64+`"}`); e.Code == 200 {
		t.Errorf("eHSM Decrypt of a bound key: %+v", e)
	}
	rsa, _ := n.CreateKey(ctx, client.KeyOptions{Spec: "EH_RSA_2048"})
	if e := r.call("ExportDataKey", `{"keyid":"`+k.ID+`","ukeyid":"`+rsa.ID+`","olddatakey_base":"`+b64+`"}`); e.Code == 200 {
		t.Errorf("eHSM ExportDataKey of a bound key: %+v", e)
	}
}
