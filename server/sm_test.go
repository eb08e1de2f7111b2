package server_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"testing"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/smx509"
	"github.com/google/uuid"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server/servertest"
)

// TestSMKeys: EH_SM2 and EH_SM4_CTR/EH_SM4_CBC through every eHSM action
// that takes them, with the request fields eHSM's SDK sends. SM2 results
// are checked with an independent implementation (gmsm on the client
// side); SM4 ciphertexts are authenticated (SM4-GCM) and name key id and
// version like the AES ones.
func TestSMKeys(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{})
	_, cfg := inst.Enroll(t)
	r := newRaw(t, inst, cfg)
	b64 := base64.StdEncoding.EncodeToString

	for _, spec := range []string{"EH_SM4_CTR", "EH_SM4_CBC"} {
		id := str(t, ok(t, r.call("CreateKey", `{"keyspec":"`+spec+`","origin":"EH_INTERNAL_KEY"}`)), "keyid")
		pt := b64([]byte("national standard plaintext"))
		ct := str(t, ok(t, r.call("Encrypt", fmt.Sprintf(`{"keyid":%q,"plaintext":%q,"aad":%q}`, id, pt, b64([]byte("ctx"))))), "ciphertext")
		raw, _ := base64.StdEncoding.DecodeString(ct)
		kid, _ := uuid.Parse(id)
		if raw[0] != 0x01 || !bytes.Equal(raw[1:17], kid[:]) || !bytes.Equal(raw[17:21], []byte{0, 0, 0, 1}) || len(raw) != 21+12+27+16 {
			t.Fatalf("%s ciphertext layout: %x", spec, raw)
		}
		if got := str(t, ok(t, r.call("Decrypt", fmt.Sprintf(`{"keyid":%q,"ciphertext":%q,"aad":%q}`, id, ct, b64([]byte("ctx"))))), "plaintext"); got != pt {
			t.Fatalf("%s Decrypt: %q", spec, got)
		}
		// Authenticated: the AAD counts and every byte is checked.
		expectCode(t, r.call("Decrypt", fmt.Sprintf(`{"keyid":%q,"ciphertext":%q,"aad":%q}`, id, ct, b64([]byte("other")))), 400, "failed authentication")
		bad := append([]byte{}, raw...)
		bad[len(bad)-1] ^= 1
		expectCode(t, r.call("Decrypt", fmt.Sprintf(`{"keyid":%q,"ciphertext":%q,"aad":%q}`, id, b64(bad), b64([]byte("ctx")))), 400, "failed authentication")
		// Data keys, as BigDL asks for them.
		dk := ok(t, r.call("GenerateDataKey", fmt.Sprintf(`{"keyid":%q,"keylen":32,"aad":"dGVzdA=="}`, id)))
		if got := str(t, ok(t, r.call("Decrypt", fmt.Sprintf(`{"keyid":%q,"ciphertext":%q,"aad":"dGVzdA=="}`, id, str(t, dk, "ciphertext")))), "plaintext"); got != str(t, dk, "plaintext") {
			t.Fatalf("%s data key round trip", spec)
		}
		ok(t, r.call("GenerateDataKeyWithoutPlaintext", fmt.Sprintf(`{"keyid":%q,"keylen":16,"aad":"dGVzdA=="}`, id)))
		// Rotation: new ciphertexts name version 2, old ones still decrypt.
		n, _ := client.NewNative(cfg)
		if _, err := n.KeyAction(t.Context(), id, "rotate", nil); err != nil {
			t.Fatal(err)
		}
		ct2 := str(t, ok(t, r.call("Encrypt", fmt.Sprintf(`{"keyid":%q,"plaintext":%q}`, id, pt))), "ciphertext")
		if raw2, _ := base64.StdEncoding.DecodeString(ct2); !bytes.Equal(raw2[17:21], []byte{0, 0, 0, 2}) {
			t.Fatalf("%s after rotation: version %x", spec, raw2[17:21])
		}
		ok(t, r.call("Decrypt", fmt.Sprintf(`{"keyid":%q,"ciphertext":%q,"aad":%q}`, id, ct, b64([]byte("ctx")))))
		expectCode(t, r.call("Sign", fmt.Sprintf(`{"keyid":%q,"message":%q,"message_type":"EH_RAW","digest_mode":"EH_SM3","padding_mode":"EH_PAD_NONE"}`, id, pt)), 400, "")
	}

	// SM2: sign/verify (raw and digest), encrypt/decrypt, public key, export.
	sm2ID := str(t, ok(t, r.call("CreateKey", `{"keyspec":"EH_SM2","origin":"EH_INTERNAL_KEY"}`)), "keyid")
	block, _ := pem.Decode([]byte(str(t, ok(t, r.call("GetPublicKey", fmt.Sprintf(`{"keyid":%q}`, sm2ID))), "pubkey")))
	if block == nil {
		t.Fatal("GetPublicKey: no PEM")
	}
	pubAny, err := smx509.ParsePKIXPublicKey(block.Bytes)
	if err != nil || !sm2.IsSM2PublicKey(pubAny) {
		t.Fatalf("GetPublicKey is not an SM2 key: %T %v", pubAny, err)
	}
	msg := []byte("sign me under GB/T 32918")
	for _, mode := range []string{"EH_SM3", "EH_SHA_256"} { // eHSM signs SM2 with SM3 whatever digest_mode says
		sig := str(t, ok(t, r.call("Sign", fmt.Sprintf(`{"keyid":%q,"message":%q,"message_type":"EH_RAW","digest_mode":%q,"padding_mode":"EH_PAD_NONE"}`, sm2ID, b64(msg), mode))), "signature")
		sigRaw, _ := base64.StdEncoding.DecodeString(sig)
		pubKey := *pubAny.(*ecdsa.PublicKey)
		if !sm2.VerifyASN1WithSM2(&pubKey, nil, msg, sigRaw) {
			t.Fatalf("SM2 signature (%s) does not verify with an independent SM2 implementation", mode)
		}
		v := ok(t, r.call("Verify", fmt.Sprintf(`{"keyid":%q,"message":%q,"message_type":"EH_RAW","digest_mode":%q,"padding_mode":"EH_PAD_NONE","signature":%q}`, sm2ID, b64(msg), mode, sig)))
		if v["result"] != true {
			t.Fatalf("Verify: %v", v)
		}
		v = ok(t, r.call("Verify", fmt.Sprintf(`{"keyid":%q,"message":%q,"message_type":"EH_RAW","digest_mode":%q,"padding_mode":"EH_PAD_NONE","signature":%q}`, sm2ID, b64([]byte("other")), mode, sig)))
		if v["result"] != false {
			t.Fatalf("Verify of another message: %v", v)
		}
	}
	// EH_DIGEST: the caller computes SM3(ZA || M).
	pubKey := *pubAny.(*ecdsa.PublicKey)
	za, _ := sm2.CalculateZA(&pubKey, []byte("1234567812345678"))
	e := sm3Sum(append(za, msg...))
	sig := str(t, ok(t, r.call("Sign", fmt.Sprintf(`{"keyid":%q,"message":%q,"message_type":"EH_DIGEST","digest_mode":"EH_SM3","padding_mode":"EH_PAD_NONE"}`, sm2ID, b64(e)))), "signature")
	sigRaw, _ := base64.StdEncoding.DecodeString(sig)
	if !sm2.VerifyASN1WithSM2(&pubKey, nil, msg, sigRaw) {
		t.Fatal("SM2 digest signature does not verify as a signature of the message")
	}
	expectCode(t, r.call("Sign", fmt.Sprintf(`{"keyid":%q,"message":%q,"message_type":"EH_DIGEST","digest_mode":"EH_SM3","padding_mode":"EH_PAD_NONE"}`, sm2ID, b64(e[:20]))), 400, "32 bytes")

	// Encryption by an independent client, decryption by the server, and back.
	secret := []byte("database password")
	clientCT, _ := sm2.EncryptASN1(rand.Reader, &pubKey, secret)
	if got := str(t, ok(t, r.call("AsymmetricDecrypt", fmt.Sprintf(`{"keyid":%q,"ciphertext":%q,"padding_mode":"EH_PAD_NONE"}`, sm2ID, b64(clientCT)))), "plaintext"); got != b64(secret) {
		t.Fatalf("AsymmetricDecrypt of a client SM2 ciphertext: %q", got)
	}
	serverCT := str(t, ok(t, r.call("AsymmetricEncrypt", fmt.Sprintf(`{"keyid":%q,"plaintext":%q,"padding_mode":"EH_PAD_NONE"}`, sm2ID, b64(secret)))), "ciphertext")
	if got := str(t, ok(t, r.call("AsymmetricDecrypt", fmt.Sprintf(`{"keyid":%q,"ciphertext":%q,"padding_mode":"EH_PAD_NONE"}`, sm2ID, serverCT))), "plaintext"); got != b64(secret) {
		t.Fatal("SM2 round trip")
	}
	expectCode(t, r.call("AsymmetricEncrypt", fmt.Sprintf(`{"keyid":%q,"plaintext":%q,"padding_mode":"EH_RSA_PKCS1_OAEP"}`, sm2ID, b64(secret))), 400, "EH_PAD_NONE")
	// ExportDataKey to an SM2 key.
	aesID := str(t, ok(t, r.call("CreateKey", `{"keyspec":"EH_SM4_CBC","origin":"EH_INTERNAL_KEY"}`)), "keyid")
	dk := ok(t, r.call("GenerateDataKey", fmt.Sprintf(`{"keyid":%q,"keylen":32,"aad":"dGVzdA=="}`, aesID)))
	nd := str(t, ok(t, r.call("ExportDataKey", fmt.Sprintf(`{"keyid":%q,"ukeyid":%q,"olddatakey_base":%q,"aad":"dGVzdA=="}`, aesID, sm2ID, str(t, dk, "ciphertext")))), "newdatakey")
	if got := str(t, ok(t, r.call("AsymmetricDecrypt", fmt.Sprintf(`{"keyid":%q,"ciphertext":%q,"padding_mode":"EH_PAD_NONE"}`, sm2ID, nd))), "plaintext"); got != str(t, dk, "plaintext") {
		t.Fatal("ExportDataKey to SM2 did not carry the data key")
	}
	// SM2 keys do not encrypt symmetrically.
	expectCode(t, r.call("Encrypt", fmt.Sprintf(`{"keyid":%q,"plaintext":%q}`, sm2ID, b64(secret))), 400, "symmetric key")
}

func sm3Sum(b []byte) []byte {
	h := sm3.New()
	h.Write(b)
	return h.Sum(nil)
}
