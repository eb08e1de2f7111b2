package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server/servertest"
	"github.com/ppml-project/ppml/wire/ehsmsig"
)

// raw sends hand-made eHSM requests, so tests control every field.
type raw struct {
	t      *testing.T
	inst   *servertest.Instance
	http   *http.Client
	appID  string
	apiKey string
}

func newRaw(t *testing.T, inst *servertest.Instance, cfg client.Config) *raw {
	h, err := client.HTTPClient(inst.CAFile, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &raw{t: t, inst: inst, http: h, appID: cfg.AppID, apiKey: cfg.APIKey}
}

type envelopeResp struct {
	Code    int            `json:"code"`
	Message string         `json:"message"`
	Result  map[string]any `json:"result"`
}

func (r *raw) post(action string, body []byte) envelopeResp {
	r.t.Helper()
	resp, err := r.http.Post(r.inst.URL+"/ehsm?Action="+action, "application/json", bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		r.t.Fatalf("%s: HTTP %d (eHSM answers 200 with the code in the body)", action, resp.StatusCode)
	}
	var e envelopeResp
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &e); err != nil {
		r.t.Fatalf("%s: body is not the eHSM envelope: %s", action, data)
	}
	if e.Result == nil {
		r.t.Fatalf("%s: result object missing: %s", action, data)
	}
	return e
}

// signed builds a signed body; payload is raw JSON so types can be wrong on purpose.
func (r *raw) signed(payloadJSON string, ts time.Time, nonce string) []byte {
	r.t.Helper()
	tsText := strconv.FormatInt(ts.UnixMilli(), 10)
	dec := json.NewDecoder(strings.NewReader(payloadJSON))
	dec.UseNumber()
	var p any
	if err := dec.Decode(&p); err != nil {
		r.t.Fatal(err)
	}
	sign := ehsmsig.Sign([]byte(r.apiKey), ehsmsig.Canonical(ehsmsig.Envelope(r.appID, nonce, tsText, p)))
	nonceField := ""
	if nonce != "" {
		nonceField = fmt.Sprintf(`"nonce":%q,`, nonce)
	}
	return []byte(fmt.Sprintf(`{"appid":%q,%s"payload":%s,"timestamp":%q,"sign":%q}`, r.appID, nonceField, payloadJSON, tsText, sign))
}

func (r *raw) call(action, payloadJSON string) envelopeResp {
	r.t.Helper()
	return r.post(action, r.signed(payloadJSON, time.Now(), nonce()))
}

var nonceCounter int

func nonce() string { nonceCounter++; return "t-" + strconv.Itoa(nonceCounter) }

func expectCode(t *testing.T, e envelopeResp, code int, msgPart string) {
	t.Helper()
	if e.Code != code || !strings.Contains(e.Message, msgPart) {
		t.Fatalf("got code %d %q, want code %d containing %q", e.Code, e.Message, code, msgPart)
	}
}

func ok(t *testing.T, e envelopeResp) map[string]any {
	t.Helper()
	if e.Code != 200 {
		t.Fatalf("code %d: %s", e.Code, e.Message)
	}
	return e.Result
}

func str(t *testing.T, m map[string]any, k string) string {
	t.Helper()
	s, isStr := m[k].(string)
	if !isStr || s == "" {
		t.Fatalf("result.%s = %#v, want a non-empty string", k, m[k])
	}
	return s
}

// TestEHSMActions runs every eHSM action against both stores, the way
// BigDL and eHSM SDKs call them.
func TestEHSMActions(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			inst := servertest.Start(t, servertest.Options{Store: st})
			_, cfg := inst.Enroll(t)
			r := newRaw(t, inst, cfg)

			v := ok(t, r.post("GetVersion", nil))
			str(t, v, "version")

			// BigDL's exact CreateKey / GenerateDataKeyWithoutPlaintext / Decrypt sequence.
			keyID := str(t, ok(t, r.call("CreateKey", `{"keyspec":"EH_AES_GCM_128","origin":"EH_INTERNAL_KEY"}`)), "keyid")
			ct := str(t, ok(t, r.call("GenerateDataKeyWithoutPlaintext", fmt.Sprintf(`{"keyid":%q,"keylen":32,"aad":"test"}`, keyID))), "ciphertext")
			if n := len(ct); n >= 376 {
				t.Fatalf("data key ciphertext is %d base64 chars; BigDL needs < 376", n)
			}
			pt := str(t, ok(t, r.call("Decrypt", fmt.Sprintf(`{"keyid":%q,"ciphertext":%q,"aad":"test"}`, keyID, ct))), "plaintext")
			if raw, err := base64.StdEncoding.DecodeString(pt); err != nil || len(raw) != 32 || len(pt) != 44 {
				t.Fatalf("plaintext %q is not base64 of 32 bytes", pt)
			}
			// Wrong aad fails.
			expectCode(t, r.call("Decrypt", fmt.Sprintf(`{"keyid":%q,"ciphertext":%q,"aad":"dGVzdA=="}`, keyID, ct)), 400, "failed authentication")

			// GenerateDataKey returns both halves, consistent with Decrypt.
			gd := ok(t, r.call("GenerateDataKey", fmt.Sprintf(`{"keyid":%q,"keylen":16}`, keyID)))
			back := ok(t, r.call("Decrypt", fmt.Sprintf(`{"keyid":%q,"ciphertext":%q}`, keyID, str(t, gd, "ciphertext"))))
			if back["plaintext"] != gd["plaintext"] {
				t.Fatal("GenerateDataKey plaintext differs from Decrypt of its ciphertext")
			}

			// Encrypt / Decrypt with each AES size.
			for _, spec := range []string{"EH_AES_GCM_192", "EH_AES_GCM_256"} {
				id := str(t, ok(t, r.call("CreateKey", fmt.Sprintf(`{"keyspec":%q,"origin":"EH_INTERNAL_KEY"}`, spec))), "keyid")
				msg := base64.StdEncoding.EncodeToString([]byte("hello " + spec))
				c := str(t, ok(t, r.call("Encrypt", fmt.Sprintf(`{"keyid":%q,"plaintext":%q,"aad":"YWFk"}`, id, msg))), "ciphertext")
				if got := ok(t, r.call("Decrypt", fmt.Sprintf(`{"keyid":%q,"ciphertext":%q,"aad":"YWFk"}`, id, c)))["plaintext"]; got != msg {
					t.Fatalf("%s round trip: %v", spec, got)
				}
			}

			// RSA: encrypt/decrypt (OAEP), sign/verify (PKCS1, PSS), public key, export.
			rsaID := str(t, ok(t, r.call("CreateKey", `{"keyspec":"EH_RSA_2048","origin":"EH_INTERNAL_KEY"}`)), "keyid")
			pem := str(t, ok(t, r.call("GetPublicKey", fmt.Sprintf(`{"keyid":%q}`, rsaID))), "pubkey")
			if !strings.HasPrefix(pem, "-----BEGIN PUBLIC KEY-----") {
				t.Fatalf("pubkey is not PEM: %q", pem)
			}
			secret := base64.StdEncoding.EncodeToString([]byte("rsa secret"))
			ac := str(t, ok(t, r.call("AsymmetricEncrypt", fmt.Sprintf(`{"keyid":%q,"plaintext":%q,"padding_mode":"EH_RSA_PKCS1_OAEP"}`, rsaID, secret))), "ciphertext")
			if got := ok(t, r.call("AsymmetricDecrypt", fmt.Sprintf(`{"keyid":%q,"ciphertext":%q,"padding_mode":"EH_RSA_PKCS1_OAEP"}`, rsaID, ac)))["plaintext"]; got != secret {
				t.Fatalf("RSA round trip: %v", got)
			}
			expectCode(t, r.call("AsymmetricEncrypt", fmt.Sprintf(`{"keyid":%q,"plaintext":%q,"padding_mode":"EH_RSA_PKCS1"}`, rsaID, secret)), 400, "OAEP")
			message := base64.StdEncoding.EncodeToString([]byte("sign me"))
			for _, pad := range []string{"EH_RSA_PKCS1", "EH_RSA_PKCS1_PSS"} {
				sig := str(t, ok(t, r.call("Sign", fmt.Sprintf(`{"keyid":%q,"message":%q,"message_type":"EH_RAW","digest_mode":"EH_SHA_256","padding_mode":%q}`, rsaID, message, pad))), "signature")
				vr := ok(t, r.call("Verify", fmt.Sprintf(`{"keyid":%q,"message":%q,"message_type":"EH_RAW","digest_mode":"EH_SHA_256","padding_mode":%q,"signature":%q}`, rsaID, message, pad, sig)))
				if vr["result"] != true {
					t.Fatalf("Verify %s = %v", pad, vr["result"])
				}
				other := base64.StdEncoding.EncodeToString([]byte("other"))
				vr = ok(t, r.call("Verify", fmt.Sprintf(`{"keyid":%q,"message":%q,"message_type":"EH_RAW","digest_mode":"EH_SHA_256","padding_mode":%q,"signature":%q}`, rsaID, other, pad, sig)))
				if vr["result"] != false {
					t.Fatalf("Verify of another message = %v", vr["result"])
				}
			}
			nd := str(t, ok(t, r.call("ExportDataKey", fmt.Sprintf(`{"keyid":%q,"ukeyid":%q,"olddatakey_base":%q,"aad":"test"}`, keyID, rsaID, ct))), "newdatakey")
			if got := ok(t, r.call("AsymmetricDecrypt", fmt.Sprintf(`{"keyid":%q,"ciphertext":%q,"padding_mode":"EH_RSA_PKCS1_OAEP"}`, rsaID, nd)))["plaintext"]; got != pt {
				t.Fatal("ExportDataKey did not re-encrypt the same data key to the RSA key")
			}

			// EC: sign/verify with a digest; EC cannot encrypt.
			ecID := str(t, ok(t, r.call("CreateKey", `{"keyspec":"EH_EC_P256","origin":"EH_INTERNAL_KEY"}`)), "keyid")
			digest := sha256.Sum256([]byte("ec"))
			d64 := base64.StdEncoding.EncodeToString(digest[:])
			sig := str(t, ok(t, r.call("Sign", fmt.Sprintf(`{"keyid":%q,"message":%q,"message_type":"EH_DIGEST","digest_mode":"EH_SHA_256","padding_mode":"EH_PAD_NONE"}`, ecID, d64))), "signature")
			if ok(t, r.call("Verify", fmt.Sprintf(`{"keyid":%q,"message":%q,"message_type":"EH_DIGEST","digest_mode":"EH_SHA_256","padding_mode":"EH_PAD_NONE","signature":%q}`, ecID, d64, sig)))["result"] != true {
				t.Fatal("EC verify failed")
			}
			expectCode(t, r.call("AsymmetricEncrypt", fmt.Sprintf(`{"keyid":%q,"plaintext":%q,"padding_mode":"EH_RSA_PKCS1_OAEP"}`, ecID, secret)), 400, "EC keys cannot encrypt")
			for _, spec := range []string{"EH_EC_P384", "EH_EC_P521", "EH_RSA_3072"} {
				ok(t, r.call("CreateKey", fmt.Sprintf(`{"keyspec":%q,"origin":"EH_INTERNAL_KEY"}`, spec)))
			}
			expectCode(t, r.call("CreateKey", `{"keyspec":"EH_EC_P224","origin":"EH_INTERNAL_KEY"}`), 400, "not supported")
			expectCode(t, r.call("CreateKey", `{"keyspec":"EH_HMAC","origin":"EH_INTERNAL_KEY"}`), 400, "not supported")

			// ListKey, DisableKey, EnableKey, DeleteKey.
			list := ok(t, r.call("ListKey", `{}`))["list"].([]any)
			if len(list) != 8 {
				t.Fatalf("ListKey returned %d keys, want 8", len(list))
			}
			ok(t, r.call("DisableKey", fmt.Sprintf(`{"keyid":%q}`, keyID)))
			expectCode(t, r.call("Decrypt", fmt.Sprintf(`{"keyid":%q,"ciphertext":%q,"aad":"test"}`, keyID, ct)), 400, "keyid is disabled")
			ok(t, r.call("EnableKey", fmt.Sprintf(`{"keyid":%q}`, keyID)))
			ok(t, r.call("Decrypt", fmt.Sprintf(`{"keyid":%q,"ciphertext":%q,"aad":"test"}`, keyID, ct)))
			ok(t, r.call("DeleteKey", fmt.Sprintf(`{"keyid":%q}`, keyID)))
			expectCode(t, r.call("Decrypt", fmt.Sprintf(`{"keyid":%q,"ciphertext":%q,"aad":"test"}`, keyID, ct)), 400, "scheduled for deletion")
			expectCode(t, r.call("DeleteAllKey", `{}`), 400, "not supported")
			expectCode(t, r.call("NoSuchAction", `{}`), 404, "API Not Found")
		})
	}
}

// TestTenancy checks that no app can use, list or learn of another app's keys.
func TestTenancy(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			inst := servertest.Start(t, servertest.Options{Store: st})
			_, cfgA := inst.Enroll(t)
			_, cfgB := inst.Enroll(t)
			a, b := newRaw(t, inst, cfgA), newRaw(t, inst, cfgB)
			aes := str(t, ok(t, a.call("CreateKey", `{"keyspec":"EH_AES_GCM_256","origin":"EH_INTERNAL_KEY"}`)), "keyid")
			rsaID := str(t, ok(t, a.call("CreateKey", `{"keyspec":"EH_RSA_2048","origin":"EH_INTERNAL_KEY"}`)), "keyid")
			ct := str(t, ok(t, a.call("Encrypt", fmt.Sprintf(`{"keyid":%q,"plaintext":"aGk="}`, aes))), "ciphertext")
			bRSA := str(t, ok(t, b.call("CreateKey", `{"keyspec":"EH_RSA_2048","origin":"EH_INTERNAL_KEY"}`)), "keyid")
			m := base64.StdEncoding.EncodeToString([]byte("m"))
			attempts := map[string]string{
				"Encrypt":                         fmt.Sprintf(`{"keyid":%q,"plaintext":"aGk="}`, aes),
				"Decrypt":                         fmt.Sprintf(`{"keyid":%q,"ciphertext":%q}`, aes, ct),
				"GenerateDataKey":                 fmt.Sprintf(`{"keyid":%q,"keylen":32}`, aes),
				"GenerateDataKeyWithoutPlaintext": fmt.Sprintf(`{"keyid":%q,"keylen":32}`, aes),
				"ExportDataKey":                   fmt.Sprintf(`{"keyid":%q,"ukeyid":%q,"olddatakey_base":%q}`, aes, bRSA, ct),
				"Sign":                            fmt.Sprintf(`{"keyid":%q,"message":%q,"message_type":"EH_RAW","digest_mode":"EH_SHA_256","padding_mode":"EH_RSA_PKCS1"}`, rsaID, m),
				"Verify":                          fmt.Sprintf(`{"keyid":%q,"message":%q,"message_type":"EH_RAW","digest_mode":"EH_SHA_256","padding_mode":"EH_RSA_PKCS1","signature":"AAAA"}`, rsaID, m),
				"AsymmetricEncrypt":               fmt.Sprintf(`{"keyid":%q,"plaintext":%q,"padding_mode":"EH_RSA_PKCS1_OAEP"}`, rsaID, m),
				"AsymmetricDecrypt":               fmt.Sprintf(`{"keyid":%q,"ciphertext":"AAAA","padding_mode":"EH_RSA_PKCS1_OAEP"}`, rsaID),
				"GetPublicKey":                    fmt.Sprintf(`{"keyid":%q}`, rsaID),
				"DeleteKey":                       fmt.Sprintf(`{"keyid":%q}`, aes),
				"DisableKey":                      fmt.Sprintf(`{"keyid":%q}`, aes),
				"EnableKey":                       fmt.Sprintf(`{"keyid":%q}`, aes),
			}
			for action, p := range attempts {
				e := b.call(action, p)
				if e.Code != 400 || !strings.Contains(e.Message, "keyid error") {
					t.Errorf("app B %s on app A's key: code %d %q, want keyid error", action, e.Code, e.Message)
				}
			}
			// Using own RSA key with A's data key still fails on A's keyid.
			if l := ok(t, b.call("ListKey", `{}`))["list"].([]any); len(l) != 1 {
				t.Errorf("app B lists %d keys, want only its own 1", len(l))
			}
			// A's key is untouched by B's attempts.
			ok(t, a.call("Decrypt", fmt.Sprintf(`{"keyid":%q,"ciphertext":%q}`, aes, ct)))
			// Native API: B cannot see A's key either.
			nb, _ := client.NewNative(cfgB)
			if _, err := nb.KeyAction(context.Background(), aes, "rotate", nil); err == nil || !strings.Contains(err.Error(), "no key") {
				t.Errorf("native rotate of another app's key: %v", err)
			}
			if _, err := nb.Decrypt(context.Background(), aes, mustB64(t, ct), nil); err == nil {
				t.Error("native decrypt of another app's key succeeded")
			}
		})
	}
}

func mustB64(t *testing.T, s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEnvelopeRules covers the signature, time window, replay and bad input.
func TestEnvelopeRules(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			inst := servertest.Start(t, servertest.Options{Store: st})
			_, cfg := inst.Enroll(t)
			r := newRaw(t, inst, cfg)
			keyID := str(t, ok(t, r.call("CreateKey", `{"keyspec":"EH_AES_GCM_128","origin":"EH_INTERNAL_KEY"}`)), "keyid")
			p := fmt.Sprintf(`{"keyid":%q,"keylen":32,"aad":"test"}`, keyID)

			// Replay: the same (appid, nonce, timestamp) twice, BigDL style (no nonce).
			body := r.signed(p, time.Now(), "")
			ok(t, r.post("GenerateDataKeyWithoutPlaintext", body))
			expectCode(t, r.post("GenerateDataKeyWithoutPlaintext", body), 400, "Timestamp can't be repeated in 20 minutes")
			// A different nonce with the same timestamp is a different request.
			ts := time.Now()
			ok(t, r.post("GenerateDataKeyWithoutPlaintext", r.signed(p, ts, "n1")))
			ok(t, r.post("GenerateDataKeyWithoutPlaintext", r.signed(p, ts, "n2")))
			// An unsigned (bad signature) request does not poison the replay record.
			forged := r.signed(p, ts.Add(time.Millisecond), "")
			forgedBad := bytes.Replace(forged, []byte(`"sign":"`), []byte(`"sign":"A`), 1)
			expectCode(t, r.post("GenerateDataKeyWithoutPlaintext", forgedBad), 400, "sign error")
			ok(t, r.post("GenerateDataKeyWithoutPlaintext", forged))

			// Time window: 10 minutes either way.
			expectCode(t, r.post("GenerateDataKeyWithoutPlaintext", r.signed(p, time.Now().Add(-11*time.Minute), "")), 400, "Timestamp error")
			expectCode(t, r.post("GenerateDataKeyWithoutPlaintext", r.signed(p, time.Now().Add(11*time.Minute), "")), 400, "Timestamp error")
			ok(t, r.post("GenerateDataKeyWithoutPlaintext", r.signed(p, time.Now().Add(-9*time.Minute), "")))

			// Wrong API key, unknown app.
			other := *r
			other.apiKey = "WrongWrongWrongWrongWrongWrong12"
			expectCode(t, other.call("CreateKey", `{"keyspec":"EH_AES_GCM_128","origin":"EH_INTERNAL_KEY"}`), 400, "sign error")
			other.appID = "00000000-0000-4000-8000-000000000000"
			expectCode(t, other.call("CreateKey", `{"keyspec":"EH_AES_GCM_128","origin":"EH_INTERNAL_KEY"}`), 400, "appid error")

			// Bad input: every case a client error with a precise message.
			ts13 := strconv.FormatInt(time.Now().UnixMilli(), 10)
			cases := []struct {
				name, action string
				body         []byte
				msg          string
			}{
				{"not json", "CreateKey", []byte(`{"appid":`), "Invalid JSON"},
				{"json array", "CreateKey", []byte(`[1,2]`), "Invalid JSON"},
				{"missing sign", "CreateKey", []byte(fmt.Sprintf(`{"appid":%q,"timestamp":%q,"payload":{}}`, cfg.AppID, ts13)), "Missing required parameters"},
				{"missing payload", "Decrypt", []byte(fmt.Sprintf(`{"appid":%q,"timestamp":%q,"sign":"x"}`, cfg.AppID, ts13)), "payload is missing"},
				{"numeric timestamp", "CreateKey", []byte(fmt.Sprintf(`{"appid":%q,"timestamp":%s,"payload":{},"sign":"x"}`, cfg.AppID, ts13)), "param type error"},
				{"payload not object", "CreateKey", []byte(fmt.Sprintf(`{"appid":%q,"timestamp":%q,"payload":"x","sign":"x"}`, cfg.AppID, ts13)), "param type error"},
				{"short timestamp", "CreateKey", []byte(fmt.Sprintf(`{"appid":%q,"timestamp":"170000","payload":{},"sign":"x"}`, cfg.AppID)), "Timestamp length error"},
				{"long nonce", "CreateKey", []byte(fmt.Sprintf(`{"appid":%q,"nonce":%q,"timestamp":%q,"payload":{},"sign":"x"}`, cfg.AppID, strings.Repeat("n", 65), ts13)), "Nonce length error"},
				{"keylen as string", "GenerateDataKey", r.signed(fmt.Sprintf(`{"keyid":%q,"keylen":"32"}`, keyID), time.Now(), nonce()), "keylen must be of integer type"},
				{"keylen too big", "GenerateDataKey", r.signed(fmt.Sprintf(`{"keyid":%q,"keylen":2048}`, keyID), time.Now(), nonce()), "keylen must be between"},
				{"missing keyid", "Decrypt", r.signed(`{"ciphertext":"AAAA"}`, time.Now(), nonce()), "The keyid cannot be empty"},
				{"upper-case keyid", "Decrypt", r.signed(fmt.Sprintf(`{"keyid":%q,"ciphertext":"AAAA"}`, strings.ToUpper(keyID)), time.Now(), nonce()), "lower-case UUID"},
				{"bad base64", "Decrypt", r.signed(fmt.Sprintf(`{"keyid":%q,"ciphertext":"not base64!"}`, keyID), time.Now(), nonce()), "standard base64"},
				{"garbage ciphertext", "Decrypt", r.signed(fmt.Sprintf(`{"keyid":%q,"ciphertext":"AAAAAAAA"}`, keyID), time.Now(), nonce()), "not produced by this KMS"},
				{"unknown key", "Decrypt", r.signed(`{"keyid":"11111111-2222-4333-8444-555555555555","ciphertext":"AAAA"}`, time.Now(), nonce()), "keyid error"},
				{"bad keyspec", "CreateKey", r.signed(`{"keyspec":"AES","origin":"EH_INTERNAL_KEY"}`, time.Now(), nonce()), "is not a key spec"},
				{"body over 1 MiB", "CreateKey", append([]byte(`{"appid":"`), bytes.Repeat([]byte("a"), 1<<20+10)...), "larger than 1 MiB"},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					expectCode(t, r.post(c.action, c.body), 400, c.msg)
				})
			}
		})
	}
}
