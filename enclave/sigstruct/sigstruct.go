// Package sigstruct reads and writes the Intel SGX enclave signature
// structure (SIGSTRUCT, Intel SDM vol. 3D 35.13; Gramine's .sig file) and
// the enclave signing key it is made with: RSA-3072 with public exponent 3.
//
// Parse checks a SIGSTRUCT completely (size, both headers, vendor, date,
// reserved bytes, exponent, modulus size, RSA signature, q1 and q2), so a
// policy derived from it (Policy, BigDLPolicy) carries measurements that an
// enclave signed with that key really has. MRSIGNER is SHA-256 of the
// modulus in the little-endian byte order SIGSTRUCT stores it in, as EINIT
// computes it.
//
// No library parses SIGSTRUCT in Go; the layout is small and fixed, so it
// is written out here against Gramine's sgx_arch.h and the SDM.
package sigstruct

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Sizes and constants of the SGX signing scheme.
const (
	Size     = 1808 // bytes of a SIGSTRUCT
	KeyBits  = 3072 // modulus size SGX requires
	Exponent = 3    // public exponent SGX requires

	keyBytes = KeyBits / 8
)

// Field offsets (sgx_sigstruct_t in Gramine's pal/src/host/linux-sgx/sgx_arch.h).
const (
	offHeader        = 0
	offVendor        = 16
	offDate          = 20
	offHeader2       = 24
	offSWDefined     = 40
	offReserved1     = 44 // 84 bytes
	offModulus       = 128
	offExponent      = 512
	offSignature     = 516
	offMiscSelect    = 900
	offMiscMask      = 904
	offCET           = 908 // cet_attributes, cet_attributes_mask, 2 reserved
	offISVFamilyID   = 912
	offAttributes    = 928
	offAttributeMask = 944
	offEnclaveHash   = 960
	offReserved3     = 992 // 16 bytes
	offISVExtProdID  = 1008
	offISVProdID     = 1024
	offISVSVN        = 1026
	offReserved4     = 1028 // 12 bytes
	offQ1            = 1040
	offQ2            = 1424
)

var (
	header  = []byte{0x06, 0, 0, 0, 0xe1, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0}
	header2 = []byte{0x01, 0x01, 0, 0, 0x60, 0, 0, 0, 0x60, 0, 0, 0, 0x01, 0, 0, 0}
)

// Attribute flags (SECS.ATTRIBUTES[63:0]).
const (
	FlagInit      = 0x01
	FlagDebug     = 0x02
	FlagMode64Bit = 0x04
	FlagProvision = 0x10
	FlagLicense   = 0x20
)

// Masks Gramine's gramine-sgx-sign writes by default.
const (
	DefaultMiscMask      = 0xffffffff
	DefaultFlagsMask     = 0xffffffffffffffff
	DefaultXFRMMask      = 0xfffffffffff9ff1b
	VendorIntel          = 0x8086
	gramineDefaultXFRM   = 0x03
	gramineDefaultFlags  = FlagMode64Bit
	maxDateYear, minYear = 9999, 1
)

// Attributes are SECS.ATTRIBUTES: flags and XFRM.
type Attributes struct {
	Flags uint64 `json:"flags"`
	XFRM  uint64 `json:"xfrm"`
}

// Fields are the signed contents of a SIGSTRUCT.
type Fields struct {
	Vendor        uint32     `json:"vendor"`
	Date          time.Time  `json:"date"` // day precision, UTC
	SWDefined     uint32     `json:"sw_defined"`
	MiscSelect    uint32     `json:"misc_select"`
	MiscMask      uint32     `json:"misc_mask"`
	ISVFamilyID   [16]byte   `json:"-"`
	Attributes    Attributes `json:"attributes"`
	AttributeMask Attributes `json:"attribute_mask"`
	MREnclave     [32]byte   `json:"-"`
	ISVExtProdID  [16]byte   `json:"-"`
	ISVProdID     uint16     `json:"isv_prod_id"`
	ISVSVN        uint16     `json:"isv_svn"`
}

// GramineFields returns the fields gramine-sgx-sign writes for an enclave
// with this MRENCLAVE, product id and SVN: 64-bit mode, XFRM x87+SSE, the
// default masks, today's date; debug sets ATTRIBUTES.DEBUG.
func GramineFields(mrEnclave [32]byte, isvProdID, isvSVN uint16, debug bool) Fields {
	f := Fields{
		Date:          time.Now().UTC(),
		MiscMask:      DefaultMiscMask,
		Attributes:    Attributes{Flags: gramineDefaultFlags, XFRM: gramineDefaultXFRM},
		AttributeMask: Attributes{Flags: DefaultFlagsMask, XFRM: DefaultXFRMMask},
		MREnclave:     mrEnclave,
		ISVProdID:     isvProdID,
		ISVSVN:        isvSVN,
	}
	if debug {
		f.Attributes.Flags |= FlagDebug
	}
	return f
}

// Sigstruct is a parsed and verified SIGSTRUCT.
type Sigstruct struct {
	Fields
	// PublicKey is the enclave signing key (E = 3, 3072-bit N).
	PublicKey *rsa.PublicKey
	// MRSigner is SHA-256 of the modulus as stored (little-endian).
	MRSigner [32]byte
}

// Debug reports whether the enclave is signed as a debug enclave
// (ATTRIBUTES.DEBUG): the host can read and change its memory.
func (s *Sigstruct) Debug() bool { return s.Attributes.Flags&FlagDebug != 0 }

// Error is a SIGSTRUCT that is not acceptable; Field names the part.
type Error struct {
	Field   string
	Msg     string
	wrapped error
}

func (e *Error) Error() string { return "sigstruct: " + e.Field + ": " + e.Msg }

func (e *Error) Unwrap() error { return e.wrapped }

func bad(field, format string, a ...any) error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// ErrBadSignature is wrapped by the error of a SIGSTRUCT whose signature
// does not verify under its own modulus.
var ErrBadSignature = errors.New("the RSA signature does not verify: the file was changed after signing, or was not signed with this key")

// Parse decodes and verifies a SIGSTRUCT.
func Parse(b []byte) (*Sigstruct, error) {
	if len(b) < Size {
		return nil, bad("size", "%d bytes, a SIGSTRUCT has %d: the file is truncated (use the .sig file gramine-sgx-sign wrote)", len(b), Size)
	}
	if len(b) > Size {
		return nil, bad("size", "%d bytes, a SIGSTRUCT has %d: not a .sig file", len(b), Size)
	}
	if !bytes.Equal(b[offHeader:offHeader+16], header) {
		return nil, bad("header", "%x, want %x: not a SIGSTRUCT", b[offHeader:offHeader+16], header)
	}
	if !bytes.Equal(b[offHeader2:offHeader2+16], header2) {
		return nil, bad("header2", "%x, want %x: not a SIGSTRUCT", b[offHeader2:offHeader2+16], header2)
	}
	le32 := func(off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }
	le64 := func(off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }
	var s Sigstruct
	s.Vendor = le32(offVendor)
	if s.Vendor != 0 && s.Vendor != VendorIntel {
		return nil, bad("vendor", "%#x, want 0 or 0x8086", s.Vendor)
	}
	d, err := parseDate(le32(offDate))
	if err != nil {
		return nil, err
	}
	s.Date = d
	s.SWDefined = le32(offSWDefined)
	for _, r := range []struct {
		name    string
		off, to int
	}{{"reserved1", offReserved1, offModulus}, {"reserved2", offCET + 2, offISVFamilyID}, {"reserved3", offReserved3, offISVExtProdID}, {"reserved4", offReserved4, offQ1}} {
		if !allZero(b[r.off:r.to]) {
			return nil, bad(r.name, "bytes %d..%d are not zero: the SDM requires zero, the file is corrupt or tampered", r.off, r.to-1)
		}
	}
	if b[offCET] != 0 || b[offCET+1] != 0 {
		return nil, bad("cet_attributes", "%#x/%#x: CET enclaves are not supported", b[offCET], b[offCET+1])
	}
	if e := le32(offExponent); e != Exponent {
		return nil, bad("exponent", "%d, SGX requires %d (sign with an RSA-3072 key with exponent 3: ppml enclave key generate)", e, Exponent)
	}
	n := new(big.Int).SetBytes(reverse(b[offModulus : offModulus+keyBytes]))
	if n.BitLen() != KeyBits {
		return nil, bad("modulus", "%d bits, SGX requires %d", n.BitLen(), KeyBits)
	}
	if n.Bit(0) == 0 {
		return nil, bad("modulus", "even: not an RSA modulus")
	}
	sig := new(big.Int).SetBytes(reverse(b[offSignature : offSignature+keyBytes]))
	if sig.Cmp(n) >= 0 {
		return nil, bad("signature", "not below the modulus: corrupt")
	}
	pub := &rsa.PublicKey{N: n, E: Exponent}
	digest := sha256.Sum256(signedData(b))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], leftPad(sig.Bytes(), keyBytes)); err != nil {
		return nil, &Error{Field: "signature", Msg: ErrBadSignature.Error(), wrapped: ErrBadSignature}
	}
	q1, q2 := quotients(sig, n)
	if !bytes.Equal(b[offQ1:offQ1+keyBytes], littleEndian(q1)) {
		return nil, bad("q1", "does not equal floor(signature² / modulus): corrupt or tampered (EINIT would refuse it)")
	}
	if !bytes.Equal(b[offQ2:offQ2+keyBytes], littleEndian(q2)) {
		return nil, bad("q2", "does not equal floor((signature³ - q1·signature·modulus) / modulus): corrupt or tampered (EINIT would refuse it)")
	}
	s.PublicKey = pub
	s.MRSigner = sha256.Sum256(b[offModulus : offModulus+keyBytes])
	s.MiscSelect = le32(offMiscSelect)
	s.MiscMask = le32(offMiscMask)
	copy(s.ISVFamilyID[:], b[offISVFamilyID:])
	s.Attributes = Attributes{Flags: le64(offAttributes), XFRM: le64(offAttributes + 8)}
	s.AttributeMask = Attributes{Flags: le64(offAttributeMask), XFRM: le64(offAttributeMask + 8)}
	copy(s.MREnclave[:], b[offEnclaveHash:])
	copy(s.ISVExtProdID[:], b[offISVExtProdID:])
	s.ISVProdID = binary.LittleEndian.Uint16(b[offISVProdID:])
	s.ISVSVN = binary.LittleEndian.Uint16(b[offISVSVN:])
	return &s, nil
}

// Sign builds the SIGSTRUCT of f signed with key (RSA-3072, exponent 3),
// as gramine-sgx-sign does.
func Sign(key *rsa.PrivateKey, f Fields) ([]byte, error) {
	if err := CheckKey(&key.PublicKey); err != nil {
		return nil, err
	}
	b := make([]byte, Size)
	copy(b[offHeader:], header)
	binary.LittleEndian.PutUint32(b[offVendor:], f.Vendor)
	date, err := bcdDate(f.Date)
	if err != nil {
		return nil, err
	}
	binary.LittleEndian.PutUint32(b[offDate:], date)
	copy(b[offHeader2:], header2)
	binary.LittleEndian.PutUint32(b[offSWDefined:], f.SWDefined)
	binary.LittleEndian.PutUint32(b[offMiscSelect:], f.MiscSelect)
	binary.LittleEndian.PutUint32(b[offMiscMask:], f.MiscMask)
	copy(b[offISVFamilyID:], f.ISVFamilyID[:])
	binary.LittleEndian.PutUint64(b[offAttributes:], f.Attributes.Flags)
	binary.LittleEndian.PutUint64(b[offAttributes+8:], f.Attributes.XFRM)
	binary.LittleEndian.PutUint64(b[offAttributeMask:], f.AttributeMask.Flags)
	binary.LittleEndian.PutUint64(b[offAttributeMask+8:], f.AttributeMask.XFRM)
	copy(b[offEnclaveHash:], f.MREnclave[:])
	copy(b[offISVExtProdID:], f.ISVExtProdID[:])
	binary.LittleEndian.PutUint16(b[offISVProdID:], f.ISVProdID)
	binary.LittleEndian.PutUint16(b[offISVSVN:], f.ISVSVN)

	digest := sha256.Sum256(signedData(b))
	sigBE, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
	if err != nil {
		return nil, fmt.Errorf("sigstruct: signing: %w", err)
	}
	sig := new(big.Int).SetBytes(sigBE)
	copy(b[offModulus:], littleEndian(key.N))
	binary.LittleEndian.PutUint32(b[offExponent:], uint32(key.E))
	copy(b[offSignature:], littleEndian(sig))
	q1, q2 := quotients(sig, key.N)
	copy(b[offQ1:], littleEndian(q1))
	copy(b[offQ2:], littleEndian(q2))
	return b, nil
}

// MRSigner returns the MRSIGNER of enclaves signed with pub.
func MRSigner(pub *rsa.PublicKey) [32]byte { return sha256.Sum256(littleEndian(pub.N)) }

// signedData is what the signature covers: the first 128 bytes (headers,
// vendor, date, swdefined) and the 128 bytes from MISCSELECT.
func signedData(b []byte) []byte {
	out := make([]byte, 0, 256)
	out = append(out, b[:128]...)
	return append(out, b[offMiscSelect:offMiscSelect+128]...)
}

// quotients returns q1 = floor(s²/n) and q2 = floor((s³ - q1·s·n)/n), the
// values EINIT uses to check the signature without a division.
func quotients(s, n *big.Int) (q1, q2 *big.Int) {
	s2 := new(big.Int).Mul(s, s)
	q1, r := new(big.Int).QuoRem(s2, n, new(big.Int))
	q2 = new(big.Int).Quo(r.Mul(r, s), n)
	return q1, q2
}

func littleEndian(x *big.Int) []byte { return reverse(leftPad(x.Bytes(), keyBytes)) }

func leftPad(b []byte, n int) []byte {
	if len(b) >= n {
		return b
	}
	out := make([]byte, n)
	copy(out[n-len(b):], b)
	return out
}

func reverse(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[len(b)-1-i] = c
	}
	return out
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// The date is stored as yyyymmdd in binary-coded decimal (0x20240131).
func parseDate(v uint32) (time.Time, error) {
	s := fmt.Sprintf("%08x", v)
	var y, m, d int
	if _, err := fmt.Sscanf(s, "%4d%2d%2d", &y, &m, &d); err != nil || hexDigitsOnlyDecimal(s) != nil {
		return time.Time{}, bad("date", "%#08x is not a yyyymmdd BCD date", v)
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if y < minYear || m < 1 || m > 12 || d < 1 || t.Day() != d {
		return time.Time{}, bad("date", "%s is not a calendar date", s)
	}
	return t, nil
}

func hexDigitsOnlyDecimal(s string) error {
	for _, c := range s {
		if c < '0' || c > '9' {
			return errors.New("not decimal")
		}
	}
	return nil
}

func bcdDate(t time.Time) (uint32, error) {
	if t.IsZero() {
		t = time.Now()
	}
	t = t.UTC()
	if t.Year() < minYear || t.Year() > maxDateYear {
		return 0, fmt.Errorf("sigstruct: date %s out of range", t)
	}
	s := fmt.Sprintf("%04d%02d%02d", t.Year(), t.Month(), t.Day())
	var v uint32
	if _, err := fmt.Sscanf(s, "%x", &v); err != nil {
		return 0, err
	}
	return v, nil
}

// Hex returns MRENCLAVE and MRSIGNER in lowercase hex.
func (s *Sigstruct) Hex() (mrEnclave, mrSigner string) {
	return hex.EncodeToString(s.MREnclave[:]), hex.EncodeToString(s.MRSigner[:])
}
