package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server/servertest"
)

// Every operation on a key or policy the caller does not own answers
// exactly as for one that does not exist, on every API and whatever the
// key's state or binding: a sweep of every route with another app's ids,
// compared byte for byte (the id itself replaced) with a random id.
func TestNotYoursIsNotFound(t *testing.T) {
	ctx := context.Background()
	inst := servertest.Start(t, servertest.Options{})
	_, cfgA := inst.Enroll(t)
	_, cfgB := inst.Enroll(t)
	a, _ := client.NewNative(cfgA)
	att, _ := client.NewAttestation(cfgA)
	pol, err := att.CreatePolicy(ctx, json.RawMessage(`{"tee":"sgx","mr_enclave":["`+strings.Repeat("ab", 32)+`"]}`))
	if err != nil {
		t.Fatal(err)
	}
	mk := func(o client.KeyOptions) string {
		t.Helper()
		k, err := a.CreateKey(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		return k.ID
	}
	foreign := map[string]string{
		"enabled":  mk(client.KeyOptions{}),
		"disabled": mk(client.KeyOptions{}),
		"pending":  mk(client.KeyOptions{}),
		"bound":    mk(client.KeyOptions{ReleasePolicies: []string{pol.ID}}),
		"rsa":      mk(client.KeyOptions{Spec: "EH_RSA_2048"}),
		"ec":       mk(client.KeyOptions{Spec: "EH_EC_P256"}),
	}
	if _, err := a.KeyAction(ctx, foreign["disabled"], "disable", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.KeyAction(ctx, foreign["pending"], "schedule-deletion", map[string]int{"days": 3}); err != nil {
		t.Fatal(err)
	}
	ct, err := a.Encrypt(ctx, foreign["enabled"], []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctB64 := base64.StdEncoding.EncodeToString(ct)
	h, _ := client.HTTPClient(inst.CAFile, 0)
	eh := newRaw(t, inst, cfgB)

	do := func(method, path, body string, basic bool) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, inst.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if basic {
			req.SetBasicAuth(cfgB.AppID, cfgB.APIKey)
		}
		resp, err := h.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return append([]byte(fmt.Sprintf("%d ", resp.StatusCode)), b...)
	}
	native := func(method, suffix, body string) func(id string) []byte {
		return func(id string) []byte {
			return do(method, strings.ReplaceAll(suffix, "ID", id), strings.ReplaceAll(body, "ID", id), true)
		}
	}
	ehsm := func(action, payload string) func(id string) []byte {
		return func(id string) []byte {
			body := eh.signed(strings.ReplaceAll(payload, "ID", id), time.Now(), nonce())
			resp, err := h.Post(inst.URL+"/ehsm?Action="+action, "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return append([]byte(fmt.Sprintf("%d ", resp.StatusCode)), b...)
		}
	}
	msg := base64.StdEncoding.EncodeToString([]byte("message"))
	keyRoutes := map[string]func(id string) []byte{
		"GET /v1/keys/{id}":                    native("GET", "/v1/keys/ID", ""),
		"POST /v1/keys/{id}/rotate":            native("POST", "/v1/keys/ID/rotate", ""),
		"POST /v1/keys/{id}/enable":            native("POST", "/v1/keys/ID/enable", ""),
		"POST /v1/keys/{id}/disable":           native("POST", "/v1/keys/ID/disable", ""),
		"POST /v1/keys/{id}/schedule-deletion": native("POST", "/v1/keys/ID/schedule-deletion", `{"days":7}`),
		"POST /v1/keys/{id}/cancel-deletion":   native("POST", "/v1/keys/ID/cancel-deletion", ""),
		"POST /v1/keys/{id}/encrypt":           native("POST", "/v1/keys/ID/encrypt", `{"plaintext":"`+msg+`"}`),
		"POST /v1/keys/{id}/decrypt":           native("POST", "/v1/keys/ID/decrypt", `{"ciphertext":"`+ctB64+`"}`),
		"POST /v1/keys/{id}/datakey":           native("POST", "/v1/keys/ID/datakey", `{"length":32}`),
		"POST /v1/keys/{id}/release":           native("POST", "/v1/keys/ID/release", `{"ciphertext":"`+ctB64+`","token":"x.y.z","runtime_data":"`+msg+`"}`),
		"eHSM Encrypt":                         ehsm("Encrypt", `{"keyid":"ID","plaintext":"`+msg+`"}`),
		"eHSM Decrypt":                         ehsm("Decrypt", `{"keyid":"ID","ciphertext":"`+ctB64+`"}`),
		"eHSM GenerateDataKey":                 ehsm("GenerateDataKey", `{"keyid":"ID","keylen":32}`),
		"eHSM GenerateDataKeyWithoutPlaintext": ehsm("GenerateDataKeyWithoutPlaintext", `{"keyid":"ID","keylen":32}`),
		"eHSM ExportDataKey":                   ehsm("ExportDataKey", `{"keyid":"ID","ukeyid":"ID","olddatakey_base":"`+ctB64+`"}`),
		"eHSM Sign":                            ehsm("Sign", `{"keyid":"ID","message":"`+msg+`","message_type":"EH_RAW","digest_mode":"EH_SHA_256","padding_mode":"EH_RSA_PKCS1"}`),
		"eHSM Verify":                          ehsm("Verify", `{"keyid":"ID","message":"`+msg+`","message_type":"EH_RAW","digest_mode":"EH_SHA_256","padding_mode":"EH_RSA_PKCS1","signature":"`+msg+`"}`),
		"eHSM AsymmetricEncrypt":               ehsm("AsymmetricEncrypt", `{"keyid":"ID","plaintext":"`+msg+`","padding_mode":"EH_RSA_PKCS1_OAEP"}`),
		"eHSM AsymmetricDecrypt":               ehsm("AsymmetricDecrypt", `{"keyid":"ID","ciphertext":"`+msg+`","padding_mode":"EH_RSA_PKCS1_OAEP"}`),
		"eHSM GetPublicKey":                    ehsm("GetPublicKey", `{"keyid":"ID"}`),
		"eHSM DeleteKey":                       ehsm("DeleteKey", `{"keyid":"ID"}`),
		"eHSM EnableKey":                       ehsm("EnableKey", `{"keyid":"ID"}`),
		"eHSM DisableKey":                      ehsm("DisableKey", `{"keyid":"ID"}`),
	}
	policyRoutes := map[string]func(id string) []byte{
		"GET /v1/attestation/policies/{id}":      native("GET", "/v1/attestation/policies/ID", ""),
		"POST /v1/keys with release_policies":    native("POST", "/v1/keys", `{"release_policies":["ID"]}`),
		"POST /v1/attestation/verify policy_id":  native("POST", "/v1/attestation/verify", `{"quote":"`+msg+`","nonce":"`+msg+`","policy_id":"ID"}`),
		"eHSM GetQuotePolicy":                    ehsm("GetQuotePolicy", `{"policyId":"ID"}`),
		"eHSM VerifyQuote policyId":              ehsm("VerifyQuote", `{"quote":"`+msg+`","nonce":"`+msg+`","policyId":"ID"}`),
		"eHSM CreateKey release_policies":        ehsm("CreateKey", `{"keyspec":"EH_AES_GCM_256","origin":"EH_INTERNAL_KEY","release_policies":"ID"}`),
		"POST /v1/keys with a foreign decrypter": native("POST", "/v1/keys", `{"release_policies":["`+uuid.NewString()+`"],"decrypters":["ID"]}`),
	}
	same := func(route, what, id string, call func(string) []byte) {
		t.Helper()
		random := uuid.NewString()
		got := bytes.ReplaceAll(call(id), []byte(id), []byte("ID"))
		want := bytes.ReplaceAll(call(random), []byte(random), []byte("ID"))
		if !bytes.Equal(got, want) {
			t.Errorf("%s with %s:\n  %s\nwith a random id:\n  %s", route, what, got, want)
		}
		for _, leak := range []string{pol.ID, "Disabled", "disabled", "PendingDeletion", "scheduled", "bound", "attestation"} {
			if bytes.Contains(got, []byte(leak)) && !bytes.Contains(want, []byte(leak)) {
				t.Errorf("%s with %s leaks %q: %s", route, what, leak, got)
			}
		}
	}
	for route, call := range keyRoutes {
		for what, id := range foreign {
			same(route, "A's "+what+" key", id, call)
		}
	}
	for route, call := range policyRoutes {
		same(route, "A's policy", pol.ID, call)
	}
	// Nothing above changed A's keys.
	if k, err := a.KeyAction(ctx, foreign["enabled"], "enable", nil); err != nil || k.State != "Enabled" {
		t.Fatalf("A's key after the sweep: %+v %v", k, err)
	}
}
