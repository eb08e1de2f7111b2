package kms

import (
	"crypto"
	"crypto/elliptic"

	"github.com/ppml-project/ppml/fault"
)

// Algorithm families.
const (
	FamilyAES = "aes"
	FamilyRSA = "rsa"
	FamilyEC  = "ec"
	FamilySM2 = "sm2" // SM2 (GB/T 32918): sign, verify, encrypt, decrypt
	FamilySM4 = "sm4" // SM4 (GB/T 32907) keys, used as SM4-GCM
)

// Spec describes a key spec by its eHSM name.
type Spec struct {
	Name   string
	Family string
	Bits   int
	Curve  elliptic.Curve
}

var specs = map[string]Spec{
	"EH_AES_GCM_128": {Name: "EH_AES_GCM_128", Family: FamilyAES, Bits: 128},
	"EH_AES_GCM_192": {Name: "EH_AES_GCM_192", Family: FamilyAES, Bits: 192},
	"EH_AES_GCM_256": {Name: "EH_AES_GCM_256", Family: FamilyAES, Bits: 256},
	"EH_RSA_2048":    {Name: "EH_RSA_2048", Family: FamilyRSA, Bits: 2048},
	"EH_RSA_3072":    {Name: "EH_RSA_3072", Family: FamilyRSA, Bits: 3072},
	"EH_RSA_4096":    {Name: "EH_RSA_4096", Family: FamilyRSA, Bits: 4096},
	"EH_EC_P256":     {Name: "EH_EC_P256", Family: FamilyEC, Bits: 256, Curve: elliptic.P256()},
	"EH_EC_P384":     {Name: "EH_EC_P384", Family: FamilyEC, Bits: 384, Curve: elliptic.P384()},
	"EH_EC_P521":     {Name: "EH_EC_P521", Family: FamilyEC, Bits: 521, Curve: elliptic.P521()},
	"EH_SM2":         {Name: "EH_SM2", Family: FamilySM2, Bits: 256},
	// Both SM4 specs encrypt with SM4-GCM in our ciphertext layout:
	// eHSM's CTR and CBC modes are unauthenticated and ignore the AAD, and
	// clients never look inside a ciphertext.
	"EH_SM4_CTR": {Name: "EH_SM4_CTR", Family: FamilySM4, Bits: 128},
	"EH_SM4_CBC": {Name: "EH_SM4_CBC", Family: FamilySM4, Bits: 128},
}

// Symmetric reports whether keys of the spec encrypt with an AEAD in our
// ciphertext layout (AES-GCM or SM4-GCM).
func (s Spec) Symmetric() bool { return s.Family == FamilyAES || s.Family == FamilySM4 }

// eHSM names that exist upstream but that we refuse on purpose.
var unsupportedSpecs = map[string]string{
	"EH_EC_P224":  "EH_EC_P224 is not supported; use EH_EC_P256, EH_EC_P384 or EH_EC_P521",
	"EH_EC_P256K": "EH_EC_P256K (secp256k1) is not supported; use EH_EC_P256",
	"EH_HMAC":     "EH_HMAC is not supported (upstream does not support it either)",
}

// LookupSpec resolves an eHSM key spec name.
func LookupSpec(name string) (Spec, error) {
	if s, ok := specs[name]; ok {
		return s, nil
	}
	if why, ok := unsupportedSpecs[name]; ok {
		return Spec{}, fault.Errorf(fault.Unsupported, "unsupported_keyspec", "%s", why)
	}
	return Spec{}, fault.Errorf(fault.Invalid, "invalid_keyspec",
		"Parameter invalid, The keyspec %q is not a key spec; use one of EH_AES_GCM_128/192/256, EH_SM4_CTR, EH_SM4_CBC, EH_RSA_2048/3072/4096, EH_EC_P256/P384/P521, EH_SM2", name)
}

// Key usages and origins (eHSM names).
const (
	UsageEncryptDecrypt = "EH_KEYUSAGE_ENCRYPT_DECRYPT"
	UsageSignVerify     = "EH_KEYUSAGE_SIGN_VERIFY"
	OriginInternal      = "EH_INTERNAL_KEY"
	OriginExternal      = "EH_EXTERNAL_KEY"
)

// Signing and padding enums (eHSM names).
const (
	PadNone     = "EH_PAD_NONE"
	PadPKCS1    = "EH_RSA_PKCS1"
	PadPSS      = "EH_RSA_PKCS1_PSS"
	PadOAEP     = "EH_RSA_PKCS1_OAEP"
	MessageRaw  = "EH_RAW"
	MessageHash = "EH_DIGEST"
)

var digests = map[string]crypto.Hash{
	"EH_SHA_224": crypto.SHA224,
	"EH_SHA_256": crypto.SHA256,
	"EH_SHA_384": crypto.SHA384,
	"EH_SHA_512": crypto.SHA512,
}

func lookupDigest(name string) (crypto.Hash, error) {
	if h, ok := digests[name]; ok {
		return h, nil
	}
	if name == "EH_SM3" {
		return 0, fault.Errorf(fault.Unsupported, "unsupported_digest", "EH_SM3 is not supported; use EH_SHA_256, EH_SHA_384 or EH_SHA_512")
	}
	return 0, fault.Errorf(fault.Invalid, "invalid_digest", "Parameter invalid, The digest_mode %q is not one of EH_SHA_224, EH_SHA_256, EH_SHA_384, EH_SHA_512", name)
}
