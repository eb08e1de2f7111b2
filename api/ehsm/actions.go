package ehsm

import (
	"context"
	"encoding/base64"

	"github.com/ppml-project/ppml/kms"
)

// Payload limits (ehsm-protocol.md §11). Our ciphertexts carry a
// header more than upstream's (21 bytes), so the ciphertext limit is a little larger.
const (
	maxPlaintextB64  = 8192
	maxCiphertextB64 = 8448
	maxAADB64        = 8192
)

var (
	fKeyID       = field{name: "keyid", typ: tKeyID, required: true}
	fAAD         = field{name: "aad", typ: tBase64, max: maxAADB64}
	fKeylen      = field{name: "keylen", typ: tInt, required: true, min: 1, max: kms.MaxDataKeyLen}
	fPadding     = field{name: "padding_mode", typ: tString, required: true, max: 64}
	signFields   = []field{fKeyID, {name: "message", typ: tBase64, required: true, max: maxPlaintextB64}, {name: "message_type", required: true, max: 64}, {name: "digest_mode", required: true, max: 64}, fPadding}
	actionFields = map[string][]field{
		"CreateKey":                       {{name: "keyspec", required: true, max: 64}, {name: "origin", required: true, max: 64}, {name: "keyusage", max: 64}, {name: "release_policies", max: 4096}, {name: "decrypters", max: 4096}},
		"Encrypt":                         {fKeyID, {name: "plaintext", typ: tBase64, required: true, max: maxPlaintextB64}, fAAD},
		"Decrypt":                         {fKeyID, {name: "ciphertext", typ: tBase64, required: true, max: maxCiphertextB64}, fAAD},
		"GenerateDataKey":                 {fKeyID, fKeylen, fAAD},
		"GenerateDataKeyWithoutPlaintext": {fKeyID, fKeylen, fAAD},
		"ExportDataKey":                   {fKeyID, {name: "ukeyid", typ: tKeyID, required: true}, {name: "olddatakey_base", typ: tBase64, required: true, max: maxCiphertextB64}, fAAD},
		"Sign":                            signFields,
		"Verify":                          append(append([]field{}, signFields...), field{name: "signature", typ: tBase64, required: true, max: 2048}),
		"AsymmetricEncrypt":               {fKeyID, {name: "plaintext", typ: tBase64, required: true, max: maxPlaintextB64}, fPadding},
		"AsymmetricDecrypt":               {fKeyID, {name: "ciphertext", typ: tBase64, required: true, max: 2048}, fPadding},
		"GetPublicKey":                    {fKeyID},
		"ListKey":                         {},
		"DeleteKey":                       {fKeyID},
		"EnableKey":                       {fKeyID},
		"DisableKey":                      {fKeyID},
	}
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func (h *Handler) actions() map[string]actionFunc {
	s := h.svc
	return map[string]actionFunc{
		"CreateKey": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, error) {
			k, err := s.CreateKey(ctx, c, kms.CreateKeyRequest{Spec: p.str("keyspec"), Origin: p.str("origin"), Usage: p.str("keyusage"),
				ReleasePolicies: p.list("release_policies"), Decrypters: p.list("decrypters")})
			return map[string]any{"keyid": k.ID}, err
		},
		"Encrypt": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, error) {
			ct, err := s.Encrypt(ctx, c, p.str("keyid"), p.bytes("plaintext"), p.bytes("aad"))
			return map[string]any{"ciphertext": b64(ct)}, err
		},
		"Decrypt": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, error) {
			pt, err := s.Decrypt(ctx, c, p.str("keyid"), p.bytes("ciphertext"), p.bytes("aad"))
			return map[string]any{"plaintext": b64(pt)}, err
		},
		"GenerateDataKey": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, error) {
			pt, ct, err := s.GenerateDataKey(ctx, c, p.str("keyid"), p.int("keylen"), p.bytes("aad"), true)
			return map[string]any{"plaintext": b64(pt), "ciphertext": b64(ct)}, err
		},
		"GenerateDataKeyWithoutPlaintext": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, error) {
			_, ct, err := s.GenerateDataKey(ctx, c, p.str("keyid"), p.int("keylen"), p.bytes("aad"), false)
			return map[string]any{"ciphertext": b64(ct)}, err
		},
		"ExportDataKey": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, error) {
			out, err := s.ExportDataKey(ctx, c, p.str("keyid"), p.str("ukeyid"), p.bytes("olddatakey_base"), p.bytes("aad"))
			return map[string]any{"newdatakey": b64(out)}, err
		},
		"Sign": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, error) {
			sig, err := s.Sign(ctx, c, signRequest(p))
			return map[string]any{"signature": b64(sig)}, err
		},
		"Verify": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, error) {
			ok, err := s.Verify(ctx, c, signRequest(p), p.bytes("signature"))
			return map[string]any{"result": ok}, err
		},
		"AsymmetricEncrypt": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, error) {
			ct, err := s.AsymmetricEncrypt(ctx, c, p.str("keyid"), p.bytes("plaintext"), p.str("padding_mode"))
			return map[string]any{"ciphertext": b64(ct)}, err
		},
		"AsymmetricDecrypt": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, error) {
			pt, err := s.AsymmetricDecrypt(ctx, c, p.str("keyid"), p.bytes("ciphertext"), p.str("padding_mode"))
			return map[string]any{"plaintext": b64(pt)}, err
		},
		"GetPublicKey": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, error) {
			pem, err := s.GetPublicKey(ctx, c, p.str("keyid"))
			return map[string]any{"pubkey": pem, "keyid": p.str("keyid")}, err
		},
		"ListKey": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, error) {
			keys, err := s.ListKeys(ctx, c)
			list := make([]map[string]any, 0, len(keys))
			for _, k := range keys {
				state := 0
				if k.State == "Enabled" {
					state = 1
				}
				e := map[string]any{"keyid": k.ID, "creationDate": k.CreatedAt.UnixMilli(), "expireTime": 0,
					"alias": k.Name, "keyspec": k.Spec, "keyState": state, "state": k.State, "version": k.Version}
				if !k.DeletionAt.IsZero() {
					e["deletionDate"] = k.DeletionAt.UnixMilli()
				}
				list = append(list, e)
			}
			return map[string]any{"list": list}, err
		},
		"DeleteKey": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, error) {
			when, err := s.ScheduleDeletion(ctx, c, p.str("keyid"), 0)
			return map[string]any{"keyid": p.str("keyid"), "deletionDate": when.UnixMilli()}, err
		},
		"EnableKey": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, error) {
			return map[string]any{}, s.SetKeyEnabled(ctx, c, p.str("keyid"), true)
		},
		"DisableKey": func(ctx context.Context, c kms.Caller, p payload) (map[string]any, error) {
			return map[string]any{}, s.SetKeyEnabled(ctx, c, p.str("keyid"), false)
		},
	}
}

func signRequest(p payload) kms.SignRequest {
	return kms.SignRequest{KeyID: p.str("keyid"), Message: p.bytes("message"), MessageType: p.str("message_type"),
		DigestMode: p.str("digest_mode"), PaddingMode: p.str("padding_mode")}
}
