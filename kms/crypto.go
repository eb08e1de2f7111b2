package kms

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/sm4"
	"github.com/emmansun/gmsm/smx509"
	"github.com/google/uuid"

	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/store"
)

// Ciphertext layout (ours, self-describing so that rotation works):
//
//	version(1)=0x01 | key id (16, UUID bytes) | key version (4, big endian) | nonce (12) | AES-GCM(ciphertext || tag)
//
// AES keys use AES-GCM, SM4 keys (EH_SM4_CTR, EH_SM4_CBC) SM4-GCM; the key
// spec, bound to the material, says which. The 21-byte header followed by
// the caller's AAD is the GCM associated
// data, so a ciphertext cannot be moved to another key or version. A 32-byte
// data key becomes 81 bytes (108 base64 characters), well below the 376
// bytes BigDL's file header allows.
const (
	ctVersion    = 0x01
	ctHeaderSize = 1 + 16 + 4
	ctNonceSize  = 12
	ctOverhead   = ctHeaderSize + ctNonceSize + 16
	// MaxPlaintext is the Encrypt limit (eHSM: 6 KiB raw).
	MaxPlaintext = 6 * 1024
	// MaxDataKeyLen is the GenerateDataKey limit in bytes.
	MaxDataKeyLen = 1024
)

func aeadFor(spec string, material []byte) (cipher.AEAD, error) {
	newCipher := aes.NewCipher
	if sp, _ := LookupSpec(spec); sp.Family == FamilySM4 {
		newCipher = sm4.NewCipher
	}
	block, err := newCipher(material)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (s *Service) seal(ctx context.Context, k store.Key, plaintext, aad []byte) ([]byte, error) {
	m, err := s.material(ctx, k, k.CurrentVersion)
	if err != nil {
		return nil, err
	}
	aead, err := aeadFor(k.Spec, m)
	if err != nil {
		return nil, s.internal("encrypt", err)
	}
	id, err := uuid.Parse(k.ID)
	if err != nil {
		return nil, s.internal("encrypt", err)
	}
	out := make([]byte, ctHeaderSize+ctNonceSize, ctOverhead+len(plaintext))
	out[0] = ctVersion
	copy(out[1:17], id[:])
	binary.BigEndian.PutUint32(out[17:21], uint32(k.CurrentVersion))
	if _, err := rand.Read(out[ctHeaderSize:]); err != nil {
		return nil, s.internal("encrypt", err)
	}
	ad := append(append([]byte{}, out[:ctHeaderSize]...), aad...)
	return aead.Seal(out, out[ctHeaderSize:], plaintext, ad), nil
}

func (s *Service) open(ctx context.Context, k store.Key, ct, aad []byte) ([]byte, error) {
	if len(ct) < ctOverhead || ct[0] != ctVersion {
		return nil, fault.Errorf(fault.Invalid, "invalid_ciphertext", "Parameter invalid, The ciphertext was not produced by this KMS (bad length or version byte)")
	}
	id, _ := uuid.FromBytes(ct[1:17])
	if id.String() != k.ID {
		return nil, fault.Errorf(fault.Invalid, "ciphertext_key_mismatch", "Parameter invalid, The ciphertext was made with another key, not %s", k.ID)
	}
	version := int(binary.BigEndian.Uint32(ct[17:21]))
	if version < 1 || version > k.CurrentVersion {
		return nil, fault.Errorf(fault.Invalid, "invalid_ciphertext", "Parameter invalid, The ciphertext names version %d of key %s, which does not exist", version, k.ID)
	}
	m, err := s.material(ctx, k, version)
	if err != nil {
		return nil, err
	}
	aead, err := aeadFor(k.Spec, m)
	if err != nil {
		return nil, s.internal("decrypt", err)
	}
	ad := append(append([]byte{}, ct[:ctHeaderSize]...), aad...)
	pt, err := aead.Open(nil, ct[ctHeaderSize:ctHeaderSize+ctNonceSize], ct[ctHeaderSize+ctNonceSize:], ad)
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "decrypt_failed", "Parameter invalid, The ciphertext failed authentication: it was modified, or the aad differs from the one used to encrypt")
	}
	return pt, nil
}

func (s *Service) symmetricKey(ctx context.Context, c Caller, id string) (store.Key, error) {
	return s.checkAES(s.usableKey(ctx, c, id))
}

func (s *Service) checkAES(k store.Key, err error) (store.Key, error) {
	if err != nil {
		return k, err
	}
	if spec, _ := LookupSpec(k.Spec); !spec.Symmetric() {
		return k, fault.Errorf(fault.Invalid, "wrong_key_type", "Parameter invalid, key %s is %s; this operation needs a symmetric key (AES-GCM or SM4)", k.ID, k.Spec)
	}
	return k, nil
}

// Encrypt encrypts up to 6 KiB under the key's current version.
func (s *Service) Encrypt(ctx context.Context, c Caller, keyID string, plaintext, aad []byte) (ct []byte, err error) {
	defer func() { err = s.record(c, "Encrypt", keyID, err) }()
	if len(plaintext) == 0 || len(plaintext) > MaxPlaintext {
		return nil, fault.Errorf(fault.Invalid, "invalid_plaintext", "Parameter invalid, The plaintext must be 1..%d bytes (got %d)", MaxPlaintext, len(plaintext))
	}
	k, err := s.checkAES(s.grantedKey(ctx, c, keyID))
	if err != nil {
		return nil, err
	}
	return s.seal(ctx, k, plaintext, aad)
}

// Decrypt decrypts a ciphertext made by Encrypt or GenerateDataKey*.
func (s *Service) Decrypt(ctx context.Context, c Caller, keyID string, ct, aad []byte) (pt []byte, err error) {
	defer func() { err = s.record(c, "Decrypt", keyID, err) }()
	k, err := s.checkAES(s.revealingKey(ctx, c, keyID))
	if err != nil {
		return nil, err
	}
	return s.open(ctx, k, ct, aad)
}

// GenerateDataKey makes n random bytes and returns them with their
// ciphertext under the key.
func (s *Service) GenerateDataKey(ctx context.Context, c Caller, keyID string, n int, aad []byte, withPlaintext bool) (pt, ct []byte, err error) {
	action := "GenerateDataKeyWithoutPlaintext"
	if withPlaintext {
		action = "GenerateDataKey"
	}
	defer func() { err = s.record(c, action, keyID, err) }()
	if n < 1 || n > MaxDataKeyLen {
		return nil, nil, fault.Errorf(fault.Invalid, "invalid_keylen", "Parameter invalid, The keylen must be between 1 and %d (got %d)", MaxDataKeyLen, n)
	}
	k, err := s.checkAES(s.grantedKey(ctx, c, keyID))
	if err != nil {
		return nil, nil, err
	}
	pt = make([]byte, n)
	if _, err := rand.Read(pt); err != nil {
		return nil, nil, s.internal(action, err)
	}
	ct, err = s.seal(ctx, k, pt, aad)
	if err != nil {
		return nil, nil, err
	}
	if !withPlaintext {
		pt = nil
	}
	return pt, ct, nil
}

// privateKey loads the current private key of an asymmetric key.
func (s *Service) privateKey(ctx context.Context, c Caller, id string) (store.Key, crypto.Signer, error) {
	k, err := s.usableKey(ctx, c, id)
	return s.parsePrivateKey(ctx, id, k, err)
}

// signingKey is privateKey for Sign: a bound key never signs without
// attestation (binding asymmetric keys is refused; this guards keys bound
// before that).
func (s *Service) signingKey(ctx context.Context, c Caller, id string) (store.Key, crypto.Signer, error) {
	k, err := s.usableKey(ctx, c, id)
	if err == nil && bound(k) {
		err = attestationRequired(k)
	}
	return s.parsePrivateKey(ctx, id, k, err)
}

func (s *Service) parsePrivateKey(ctx context.Context, id string, k store.Key, err error) (store.Key, crypto.Signer, error) {
	if err != nil {
		return k, nil, err
	}
	spec, _ := LookupSpec(k.Spec)
	if spec.Symmetric() {
		return k, nil, fault.Errorf(fault.Invalid, "wrong_key_type", "Parameter invalid, key %s is %s; this operation needs an RSA, EC or SM2 key", id, k.Spec)
	}
	m, err := s.material(ctx, k, k.CurrentVersion)
	if err != nil {
		return k, nil, err
	}
	parse := x509.ParsePKCS8PrivateKey
	if spec.Family == FamilySM2 {
		parse = smx509.ParsePKCS8PrivateKey
	}
	priv, err := parse(m)
	if err != nil {
		return k, nil, s.internal("key parse", err)
	}
	return k, priv.(crypto.Signer), nil
}

// ExportDataKey re-encrypts a data key wrapped under keyID to the RSA key
// ukeyID (RSA-OAEP-SHA256), so it can be handed to the holder of ukeyID.
func (s *Service) ExportDataKey(ctx context.Context, c Caller, keyID, ukeyID string, oldCT, aad []byte) (out []byte, err error) {
	defer func() { err = s.record(c, "ExportDataKey", keyID, err) }()
	k, err := s.checkAES(s.revealingKey(ctx, c, keyID))
	if err != nil {
		return nil, err
	}
	_, signer, err := s.privateKey(ctx, c, ukeyID)
	if err != nil {
		return nil, err
	}
	pt, err := s.open(ctx, k, oldCT, aad)
	if err != nil {
		return nil, err
	}
	if sk, ok := signer.(*sm2.PrivateKey); ok {
		return sm2.EncryptASN1(rand.Reader, &sk.PublicKey, pt)
	}
	pub, ok := signer.Public().(*rsa.PublicKey)
	if !ok {
		return nil, fault.Errorf(fault.Invalid, "wrong_key_type", "Parameter invalid, ukeyid %s is neither an RSA nor an SM2 key; export needs one", ukeyID)
	}
	out, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, pt, nil)
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "export_too_large", "Parameter invalid, the data key (%d bytes) is too long for RSA-OAEP with %d-bit ukeyid", len(pt), pub.N.BitLen())
	}
	return out, nil
}

// SignRequest is the input of Sign and Verify.
type SignRequest struct {
	KeyID       string
	Message     []byte
	MessageType string // EH_RAW or EH_DIGEST
	DigestMode  string
	PaddingMode string
}

func (s *Service) digest(req SignRequest) (crypto.Hash, []byte, error) {
	h, err := lookupDigest(req.DigestMode)
	if err != nil {
		return 0, nil, err
	}
	switch req.MessageType {
	case MessageRaw:
		d := h.New()
		d.Write(req.Message)
		return h, d.Sum(nil), nil
	case MessageHash:
		if len(req.Message) != h.Size() {
			return 0, nil, fault.Errorf(fault.Invalid, "invalid_digest_length", "Parameter invalid, The message is %d bytes but a %s digest is %d bytes", len(req.Message), req.DigestMode, h.Size())
		}
		return h, req.Message, nil
	}
	return 0, nil, fault.Errorf(fault.Invalid, "invalid_message_type", "Parameter invalid, The message_type %q must be EH_RAW or EH_DIGEST", req.MessageType)
}

func checkUsage(k store.Key, want, action string) error {
	if k.Usage != "" && k.Usage != want {
		return fault.Errorf(fault.Invalid, "wrong_key_usage", "Parameter invalid, key %s has usage %s; %s needs %s", k.ID, k.Usage, action, want)
	}
	return nil
}

// Sign signs a message or digest.
func (s *Service) Sign(ctx context.Context, c Caller, req SignRequest) (sig []byte, err error) {
	defer func() { err = s.record(c, "Sign", req.KeyID, err) }()
	k, signer, err := s.signingKey(ctx, c, req.KeyID)
	if err != nil {
		return nil, err
	}
	if err := checkUsage(k, UsageSignVerify, "Sign"); err != nil {
		return nil, err
	}
	if priv, ok := signer.(*sm2.PrivateKey); ok {
		e, err := sm2Digest(&priv.PublicKey, req)
		if err != nil {
			return nil, err
		}
		return sm2.SignASN1(rand.Reader, priv, e, nil)
	}
	h, digest, err := s.digest(req)
	if err != nil {
		return nil, err
	}
	switch priv := signer.(type) {
	case *rsa.PrivateKey:
		switch req.PaddingMode {
		case PadPKCS1:
			return rsa.SignPKCS1v15(rand.Reader, priv, h, digest)
		case PadPSS:
			return rsa.SignPSS(rand.Reader, priv, h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		return nil, fault.Errorf(fault.Invalid, "invalid_padding", "Parameter invalid, RSA signing needs padding_mode EH_RSA_PKCS1 or EH_RSA_PKCS1_PSS (got %q)", req.PaddingMode)
	case *ecdsa.PrivateKey:
		return ecdsa.SignASN1(rand.Reader, priv, digest)
	}
	return nil, s.internal("Sign", errors.New("unexpected key type"))
}

// Verify checks a signature made by Sign.
func (s *Service) Verify(ctx context.Context, c Caller, req SignRequest, sig []byte) (ok bool, err error) {
	defer func() { err = s.record(c, "Verify", req.KeyID, err) }()
	k, signer, err := s.privateKey(ctx, c, req.KeyID)
	if err != nil {
		return false, err
	}
	if err := checkUsage(k, UsageSignVerify, "Verify"); err != nil {
		return false, err
	}
	if priv, ok := signer.(*sm2.PrivateKey); ok {
		e, err := sm2Digest(&priv.PublicKey, req)
		if err != nil {
			return false, err
		}
		return sm2.VerifyASN1(&priv.PublicKey, e, sig), nil
	}
	h, digest, err := s.digest(req)
	if err != nil {
		return false, err
	}
	switch pub := signer.Public().(type) {
	case *rsa.PublicKey:
		switch req.PaddingMode {
		case PadPKCS1:
			return rsa.VerifyPKCS1v15(pub, h, digest, sig) == nil, nil
		case PadPSS:
			return rsa.VerifyPSS(pub, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil, nil
		}
		return false, fault.Errorf(fault.Invalid, "invalid_padding", "Parameter invalid, RSA verification needs padding_mode EH_RSA_PKCS1 or EH_RSA_PKCS1_PSS (got %q)", req.PaddingMode)
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(pub, digest, sig), nil
	}
	return false, s.internal("Verify", errors.New("unexpected key type"))
}

// sm2DefaultUID is the user id of GB/T 32918.2 that eHSM (SM2_DEFAULT_USERID) uses.
var sm2DefaultUID = []byte("1234567812345678")

// sm2Digest is what SM2 signs: for EH_RAW, SM3(ZA || message) with the
// default user id 1234567812345678 (GB/T 32918.2; eHSM signs SM2 with SM3
// whatever digest_mode says, and so do we); for EH_DIGEST, the 32-byte
// value the caller computed that way.
func sm2Digest(pub *ecdsa.PublicKey, req SignRequest) ([]byte, error) {
	switch req.MessageType {
	case MessageRaw:
		za, err := sm2.CalculateZA(pub, sm2DefaultUID)
		if err != nil {
			return nil, err
		}
		h := sm3.New()
		h.Write(za)
		h.Write(req.Message)
		return h.Sum(nil), nil
	case MessageHash:
		if len(req.Message) != sm3.Size {
			return nil, fault.Errorf(fault.Invalid, "invalid_digest_length", "Parameter invalid, The message is %d bytes but an SM2 digest (SM3 of ZA || message) is %d bytes", len(req.Message), sm3.Size)
		}
		return req.Message, nil
	}
	return nil, fault.Errorf(fault.Invalid, "invalid_message_type", "Parameter invalid, The message_type %q must be EH_RAW or EH_DIGEST", req.MessageType)
}

// sm2EncryptionKey checks an SM2 key and padding for asymmetric
// encryption (eHSM: SM2 encryption takes no padding).
func sm2EncryptionKey(k store.Key, padding string) error {
	if err := checkUsage(k, UsageEncryptDecrypt, "asymmetric encryption"); err != nil {
		return err
	}
	if padding != "" && padding != PadNone {
		return fault.Errorf(fault.Invalid, "invalid_padding", "Parameter invalid, SM2 encryption takes padding_mode EH_PAD_NONE (got %q)", padding)
	}
	return nil
}

func rsaEncryptionKey(k store.Key, signer crypto.Signer, padding string) (*rsa.PrivateKey, error) {
	priv, ok := signer.(*rsa.PrivateKey)
	if !ok {
		return nil, fault.Errorf(fault.Invalid, "wrong_key_type", "Parameter invalid, key %s is %s; EC keys cannot encrypt, use an RSA key", k.ID, k.Spec)
	}
	if err := checkUsage(k, UsageEncryptDecrypt, "asymmetric encryption"); err != nil {
		return nil, err
	}
	switch padding {
	case PadOAEP:
		return priv, nil
	case PadPKCS1:
		return nil, fault.Errorf(fault.Unsupported, "unsupported_padding", "EH_RSA_PKCS1 encryption padding is not supported (it allows padding-oracle attacks); use EH_RSA_PKCS1_OAEP")
	}
	return nil, fault.Errorf(fault.Invalid, "invalid_padding", "Parameter invalid, The padding_mode %q must be EH_RSA_PKCS1_OAEP", padding)
}

// AsymmetricEncrypt encrypts with an RSA key's public half (OAEP, SHA-256).
func (s *Service) AsymmetricEncrypt(ctx context.Context, c Caller, keyID string, plaintext []byte, padding string) (ct []byte, err error) {
	defer func() { err = s.record(c, "AsymmetricEncrypt", keyID, err) }()
	k, signer, err := s.privateKey(ctx, c, keyID)
	if err != nil {
		return nil, err
	}
	if sk, ok := signer.(*sm2.PrivateKey); ok {
		if err := sm2EncryptionKey(k, padding); err != nil {
			return nil, err
		}
		if len(plaintext) == 0 || len(plaintext) > MaxPlaintext {
			return nil, fault.Errorf(fault.Invalid, "invalid_plaintext", "Parameter invalid, The plaintext must be 1..%d bytes (got %d)", MaxPlaintext, len(plaintext))
		}
		return sm2.EncryptASN1(rand.Reader, &sk.PublicKey, plaintext)
	}
	priv, err := rsaEncryptionKey(k, signer, padding)
	if err != nil {
		return nil, err
	}
	ct, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, &priv.PublicKey, plaintext, nil)
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "invalid_plaintext", "Parameter invalid, The plaintext (%d bytes) is too long for RSA-OAEP-SHA256 with a %d-bit key (max %d)", len(plaintext), priv.N.BitLen(), priv.Size()-2*32-2)
	}
	return ct, nil
}

// AsymmetricDecrypt decrypts with an RSA key (OAEP, SHA-256).
func (s *Service) AsymmetricDecrypt(ctx context.Context, c Caller, keyID string, ct []byte, padding string) (pt []byte, err error) {
	defer func() { err = s.record(c, "AsymmetricDecrypt", keyID, err) }()
	k, err := s.revealingKey(ctx, c, keyID)
	k, signer, err := s.parsePrivateKey(ctx, keyID, k, err)
	if err != nil {
		return nil, err
	}
	if sk, ok := signer.(*sm2.PrivateKey); ok {
		if err := sm2EncryptionKey(k, padding); err != nil {
			return nil, err
		}
		if pt, err = sm2.Decrypt(sk, ct); err != nil {
			return nil, fault.Errorf(fault.Invalid, "decrypt_failed", "Parameter invalid, The ciphertext does not decrypt with SM2 key %s (wrong key or modified ciphertext)", keyID)
		}
		return pt, nil
	}
	priv, err := rsaEncryptionKey(k, signer, padding)
	if err != nil {
		return nil, err
	}
	pt, err = rsa.DecryptOAEP(sha256.New(), nil, priv, ct, nil)
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "decrypt_failed", "Parameter invalid, The ciphertext does not decrypt with key %s (wrong key, padding or modified ciphertext)", keyID)
	}
	return pt, nil
}

// GetPublicKey returns the PEM public key of an asymmetric key.
func (s *Service) GetPublicKey(ctx context.Context, c Caller, keyID string) (pemText string, err error) {
	defer func() { err = s.record(c, "GetPublicKey", keyID, err) }()
	_, signer, err := s.privateKey(ctx, c, keyID)
	if err != nil {
		return "", err
	}
	marshal := x509.MarshalPKIXPublicKey
	if _, ok := signer.(*sm2.PrivateKey); ok {
		marshal = smx509.MarshalPKIXPublicKey
	}
	der, err := marshal(signer.Public())
	if err != nil {
		return "", s.internal("GetPublicKey", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}
