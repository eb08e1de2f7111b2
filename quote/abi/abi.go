// Package abi parses the binary layout of Intel DCAP ECDSA quotes: SGX quote
// v3 and TDX quote v4/v5 (header, report bodies, signature data,
// certification data and the QE report). It performs no cryptographic
// verification; see package quote/verify for that.
//
// All multi-byte integers in a quote are little-endian; ECDSA signatures and
// public keys are raw big-endian coordinates.
package abi

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Layout sizes and constants.
const (
	HeaderSize        = 48
	EnclaveReportSize = 384
	TDReport10Size    = 584
	TDReport15Size    = 648
	SignatureSize     = 64
	AttestKeySize     = 64
	v5DescriptorSize  = 6

	AttKeyTypeECDSAP256 = 2

	TEETypeSGX uint32 = 0x00000000
	TEETypeTDX uint32 = 0x00000081

	// Certification data types.
	CertDataPCKChain uint16 = 5
	CertDataQEReport uint16 = 6

	// v5 body types.
	BodyTypeSGX  uint16 = 1
	BodyTypeTD10 uint16 = 2
	BodyTypeTD15 uint16 = 3
)

// IntelQEVendorID is the QE vendor id of Intel's quoting enclaves.
var IntelQEVendorID = [16]byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}

// TEE identifies the kind of trusted execution environment a quote is from.
type TEE string

const (
	SGX TEE = "sgx"
	TDX TEE = "tdx"
)

// Header is the 48-byte quote header.
type Header struct {
	Version    uint16
	AttKeyType uint16
	TEEType    uint32 // v4/v5 only; 0 for v3
	QESVN      uint16 // v3 only
	PCESVN     uint16 // v3 only
	QEVendorID [16]byte
	UserData   [20]byte
}

// EnclaveReport is the 384-byte SGX enclave report body, used as the body of
// SGX quotes and as the QE report in every quote version.
type EnclaveReport struct {
	CPUSVN       [16]byte
	MiscSelect   [4]byte // raw bytes in report order
	ISVExtProdID [16]byte
	Attributes   [16]byte // flags (LE uint64) || xfrm (LE uint64)
	MREnclave    [32]byte
	MRSigner     [32]byte
	ConfigID     [64]byte
	ISVProdID    uint16
	ISVSVN       uint16
	ConfigSVN    uint16
	ISVFamilyID  [16]byte
	ReportData   [64]byte
}

// Flags returns ATTRIBUTES.FLAGS.
func (r *EnclaveReport) Flags() uint64 { return binary.LittleEndian.Uint64(r.Attributes[:8]) }

// Debug reports whether ATTRIBUTES.FLAGS bit 1 (DEBUG) is set.
func (r *EnclaveReport) Debug() bool { return r.Flags()&2 != 0 }

// MiscSelectValue returns MISCSELECT as an integer.
func (r *EnclaveReport) MiscSelectValue() uint32 { return binary.LittleEndian.Uint32(r.MiscSelect[:]) }

// ParseEnclaveReport decodes a 384-byte SGX enclave report body.
func ParseEnclaveReport(b []byte) (*EnclaveReport, error) {
	if len(b) != EnclaveReportSize {
		return nil, fmt.Errorf("enclave report body: %d bytes, want %d", len(b), EnclaveReportSize)
	}
	r := &EnclaveReport{}
	copy(r.CPUSVN[:], b[0:16])
	copy(r.MiscSelect[:], b[16:20])
	copy(r.ISVExtProdID[:], b[32:48])
	copy(r.Attributes[:], b[48:64])
	copy(r.MREnclave[:], b[64:96])
	copy(r.MRSigner[:], b[128:160])
	copy(r.ConfigID[:], b[192:256])
	r.ISVProdID = binary.LittleEndian.Uint16(b[256:258])
	r.ISVSVN = binary.LittleEndian.Uint16(b[258:260])
	r.ConfigSVN = binary.LittleEndian.Uint16(b[260:262])
	copy(r.ISVFamilyID[:], b[304:320])
	copy(r.ReportData[:], b[320:384])
	return r, nil
}

// Marshal encodes the report into its 384-byte layout (reserved bytes zero).
func (r *EnclaveReport) Marshal() []byte {
	b := make([]byte, EnclaveReportSize)
	copy(b[0:16], r.CPUSVN[:])
	copy(b[16:20], r.MiscSelect[:])
	copy(b[32:48], r.ISVExtProdID[:])
	copy(b[48:64], r.Attributes[:])
	copy(b[64:96], r.MREnclave[:])
	copy(b[128:160], r.MRSigner[:])
	copy(b[192:256], r.ConfigID[:])
	binary.LittleEndian.PutUint16(b[256:258], r.ISVProdID)
	binary.LittleEndian.PutUint16(b[258:260], r.ISVSVN)
	binary.LittleEndian.PutUint16(b[260:262], r.ConfigSVN)
	copy(b[304:320], r.ISVFamilyID[:])
	copy(b[320:384], r.ReportData[:])
	return b
}

// TDReport is a TDX TD report body, version 1.0 (584 bytes) or 1.5 (648
// bytes, with TEETCBSVN2 and MRServiceTD).
type TDReport struct {
	TEETCBSVN      [16]byte
	MRSeam         [48]byte
	MRSignerSeam   [48]byte
	SeamAttributes [8]byte
	TDAttributes   [8]byte
	XFAM           [8]byte
	MRTD           [48]byte
	MRConfigID     [48]byte
	MROwner        [48]byte
	MROwnerConfig  [48]byte
	RTMR           [4][48]byte
	ReportData     [64]byte
	// TD report 1.5 only.
	V15         bool
	TEETCBSVN2  [16]byte
	MRServiceTD [48]byte
}

// Debug reports whether TD_ATTRIBUTES bit 0 (TUD.DEBUG) is set.
func (r *TDReport) Debug() bool { return r.TDAttributes[0]&1 != 0 }

// ParseTDReport decodes a TD report body of 584 or 648 bytes.
func ParseTDReport(b []byte) (*TDReport, error) {
	if len(b) != TDReport10Size && len(b) != TDReport15Size {
		return nil, fmt.Errorf("TD report body: %d bytes, want %d or %d", len(b), TDReport10Size, TDReport15Size)
	}
	r := &TDReport{}
	copy(r.TEETCBSVN[:], b[0:16])
	copy(r.MRSeam[:], b[16:64])
	copy(r.MRSignerSeam[:], b[64:112])
	copy(r.SeamAttributes[:], b[112:120])
	copy(r.TDAttributes[:], b[120:128])
	copy(r.XFAM[:], b[128:136])
	copy(r.MRTD[:], b[136:184])
	copy(r.MRConfigID[:], b[184:232])
	copy(r.MROwner[:], b[232:280])
	copy(r.MROwnerConfig[:], b[280:328])
	for i := 0; i < 4; i++ {
		copy(r.RTMR[i][:], b[328+48*i:376+48*i])
	}
	copy(r.ReportData[:], b[520:584])
	if len(b) == TDReport15Size {
		r.V15 = true
		copy(r.TEETCBSVN2[:], b[584:600])
		copy(r.MRServiceTD[:], b[600:648])
	}
	return r, nil
}

// Marshal encodes the TD report (584 bytes, or 648 when V15 is set).
func (r *TDReport) Marshal() []byte {
	n := TDReport10Size
	if r.V15 {
		n = TDReport15Size
	}
	b := make([]byte, n)
	copy(b[0:16], r.TEETCBSVN[:])
	copy(b[16:64], r.MRSeam[:])
	copy(b[64:112], r.MRSignerSeam[:])
	copy(b[112:120], r.SeamAttributes[:])
	copy(b[120:128], r.TDAttributes[:])
	copy(b[128:136], r.XFAM[:])
	copy(b[136:184], r.MRTD[:])
	copy(b[184:232], r.MRConfigID[:])
	copy(b[232:280], r.MROwner[:])
	copy(b[280:328], r.MROwnerConfig[:])
	for i := 0; i < 4; i++ {
		copy(b[328+48*i:376+48*i], r.RTMR[i][:])
	}
	copy(b[520:584], r.ReportData[:])
	if r.V15 {
		copy(b[584:600], r.TEETCBSVN2[:])
		copy(b[600:648], r.MRServiceTD[:])
	}
	return b
}

// Quote is a parsed ECDSA quote. Byte slices alias the input.
type Quote struct {
	Header Header
	TEE    TEE

	// BodyType is the v5 body type, or the implied type for v3 (1) and v4 (2).
	BodyType uint16
	// Exactly one of SGXBody and TDBody is set.
	SGXBody *EnclaveReport
	TDBody  *TDReport
	// RawBody is the report body bytes.
	RawBody []byte

	// Signed is the region covered by the quote signature: header, (v5
	// descriptor) and body.
	Signed []byte

	Signature [SignatureSize]byte
	AttestKey [AttestKeySize]byte

	QEReport    *EnclaveReport
	RawQEReport []byte
	QEReportSig [SignatureSize]byte
	QEAuthData  []byte

	// OuterCertDataType is the certification data type in the signature
	// data (5 for v3, 6 for v4/v5).
	OuterCertDataType uint16
	// PCKChainPEM is the type-5 certification data with trailing NULs
	// stripped.
	PCKChainPEM []byte

	// TrailingBytes is the number of bytes after the signature data. They
	// are outside the signed region and never interpreted.
	TrailingBytes int
}

// Version returns the quote version.
func (q *Quote) Version() uint16 { return q.Header.Version }

// ReportData returns the report data of the body (64 bytes).
func (q *Quote) ReportData() []byte {
	if q.SGXBody != nil {
		return q.SGXBody.ReportData[:]
	}
	return q.TDBody.ReportData[:]
}

// ParseError is returned for malformed quotes.
type ParseError struct{ Msg string }

func (e *ParseError) Error() string { return e.Msg }

func perr(format string, a ...any) error { return &ParseError{Msg: fmt.Sprintf(format, a...)} }

// ParseHeader decodes the 48-byte header.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, perr("quote too short: %d bytes, header needs %d", len(b), HeaderSize)
	}
	h.Version = binary.LittleEndian.Uint16(b[0:2])
	h.AttKeyType = binary.LittleEndian.Uint16(b[2:4])
	if h.Version >= 4 {
		h.TEEType = binary.LittleEndian.Uint32(b[4:8])
	} else {
		h.QESVN = binary.LittleEndian.Uint16(b[8:10])
		h.PCESVN = binary.LittleEndian.Uint16(b[10:12])
	}
	copy(h.QEVendorID[:], b[12:28])
	copy(h.UserData[:], b[28:48])
	return h, nil
}

// ParseQuote parses an SGX v3 or TDX v4/v5 ECDSA-P256 quote with
// certification data type 5 (v3) or 6 wrapping 5 (v4/v5). Bytes after the
// signature data are tolerated and counted in TrailingBytes.
func ParseQuote(b []byte) (*Quote, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	q := &Quote{Header: h}
	switch h.Version {
	case 3, 4, 5:
	default:
		return nil, perr("quote: version %d not supported (want 3, 4 or 5)", h.Version)
	}
	if h.AttKeyType != AttKeyTypeECDSAP256 {
		return nil, perr("quote: attestation key type %d not supported (want 2, ECDSA-256 with P-256)", h.AttKeyType)
	}
	if h.QEVendorID != IntelQEVendorID {
		return nil, perr("quote: QE vendor id %s is not Intel's %s", hex.EncodeToString(h.QEVendorID[:]), hex.EncodeToString(IntelQEVendorID[:]))
	}

	// Locate the body.
	bodyOff := HeaderSize
	var bodySize int
	switch h.Version {
	case 3:
		// A v3 header has no TEE type: bytes 4-7 are reserved, covered by
		// the quote signature but not decoded (ParseHeader).
		q.TEE, q.BodyType, bodySize = SGX, BodyTypeSGX, EnclaveReportSize
	case 4:
		switch h.TEEType {
		case TEETypeTDX:
			q.TEE, q.BodyType, bodySize = TDX, BodyTypeTD10, TDReport10Size
		case TEETypeSGX:
			q.TEE, q.BodyType, bodySize = SGX, BodyTypeSGX, EnclaveReportSize
		default:
			return nil, perr("quote: tee_type %#x not supported (want 0 for SGX or 0x81 for TDX)", h.TEEType)
		}
	case 5:
		if len(b) < HeaderSize+v5DescriptorSize {
			return nil, perr("quote too short: %d bytes, header+body descriptor need %d", len(b), HeaderSize+v5DescriptorSize)
		}
		q.BodyType = binary.LittleEndian.Uint16(b[48:50])
		declared := binary.LittleEndian.Uint32(b[50:54])
		var want int
		switch q.BodyType {
		case BodyTypeSGX:
			q.TEE, want = SGX, EnclaveReportSize
		case BodyTypeTD10:
			q.TEE, want = TDX, TDReport10Size
		case BodyTypeTD15:
			q.TEE, want = TDX, TDReport15Size
		default:
			return nil, perr("quote: v5 body type %d not supported (want 1, 2 or 3)", q.BodyType)
		}
		if declared != uint32(want) {
			return nil, perr("quote: v5 body type %d declares size %d, want %d", q.BodyType, declared, want)
		}
		wantTEE := TEETypeTDX
		if q.TEE == SGX {
			wantTEE = TEETypeSGX
		}
		if h.TEEType != wantTEE {
			return nil, perr("quote: tee_type %#x does not match v5 body type %d", h.TEEType, q.BodyType)
		}
		bodyOff += v5DescriptorSize
		bodySize = want
	}
	end := bodyOff + bodySize
	if len(b) < end {
		return nil, perr("quote too short: %d bytes, header+body need %d", len(b), end)
	}
	q.RawBody = b[bodyOff:end]
	q.Signed = b[:end]
	if q.TEE == SGX {
		q.SGXBody, _ = ParseEnclaveReport(q.RawBody)
	} else {
		q.TDBody, _ = ParseTDReport(q.RawBody)
	}

	// Signature data.
	if len(b) < end+4 {
		return nil, perr("quote too short: %d bytes, signature data length field needs %d", len(b), end+4)
	}
	sigLen := binary.LittleEndian.Uint32(b[end : end+4])
	sigStart := end + 4
	if uint64(sigLen) > uint64(len(b)-sigStart) {
		return nil, perr("quote truncated: signature data declares %d bytes, only %d present", sigLen, len(b)-sigStart)
	}
	sig := b[sigStart : sigStart+int(sigLen)]
	q.TrailingBytes = len(b) - sigStart - int(sigLen)

	r := reader{b: sig, what: "signature data"}
	copy(q.Signature[:], r.next(SignatureSize, "quote signature"))
	copy(q.AttestKey[:], r.next(AttestKeySize, "attestation key"))
	if r.err != nil {
		return nil, r.err
	}
	if h.Version == 3 {
		if err := parseQEReportBlock(q, &r); err != nil {
			return nil, err
		}
		typ, data := r.certData()
		if r.err != nil {
			return nil, r.err
		}
		q.OuterCertDataType = typ
		if typ != CertDataPCKChain {
			return nil, perr("quote: certification data type %d not supported (want 5)", typ)
		}
		q.PCKChainPEM = stripNUL(data)
	} else {
		typ, data := r.certData()
		if r.err != nil {
			return nil, r.err
		}
		q.OuterCertDataType = typ
		if typ != CertDataQEReport {
			return nil, perr("quote: certification data type %d not supported (want 6)", typ)
		}
		inner := reader{b: data, what: "QE report certification data"}
		if err := parseQEReportBlock(q, &inner); err != nil {
			return nil, err
		}
		ityp, idata := inner.certData()
		if inner.err != nil {
			return nil, inner.err
		}
		if ityp != CertDataPCKChain {
			return nil, perr("quote: certification data type %d not supported (want 5 inside type 6)", ityp)
		}
		if len(inner.b) != 0 {
			return nil, perr("quote: %d unexpected bytes after the PCK chain inside the QE report certification data", len(inner.b))
		}
		q.PCKChainPEM = stripNUL(idata)
	}
	if len(r.b) != 0 {
		return nil, perr("quote: %d unexpected bytes at the end of the signature data", len(r.b))
	}
	if len(q.PCKChainPEM) == 0 {
		return nil, perr("quote: PCK certificate chain is empty")
	}
	return q, nil
}

func parseQEReportBlock(q *Quote, r *reader) error {
	q.RawQEReport = r.next(EnclaveReportSize, "QE report")
	copy(q.QEReportSig[:], r.next(SignatureSize, "QE report signature"))
	authLen := r.u16("QE authentication data length")
	q.QEAuthData = r.next(int(authLen), "QE authentication data")
	if r.err != nil {
		return r.err
	}
	q.QEReport, _ = ParseEnclaveReport(q.RawQEReport)
	return nil
}

func stripNUL(b []byte) []byte { return bytes.TrimRight(b, "\x00") }

// reader consumes a byte slice with precise truncation errors.
type reader struct {
	b    []byte
	what string
	off  int
	err  error
}

func (r *reader) next(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = perr("quote truncated: %s needs %d bytes at offset %d of the %s, only %d left", field, n, r.off, r.what, len(r.b))
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	r.off += n
	return v
}

func (r *reader) u16(field string) uint16 {
	v := r.next(2, field)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(v)
}

func (r *reader) u32(field string) uint32 {
	v := r.next(4, field)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(v)
}

func (r *reader) certData() (uint16, []byte) {
	typ := r.u16("certification data type")
	size := r.u32("certification data size")
	if r.err != nil {
		return 0, nil
	}
	if uint64(size) > uint64(len(r.b)) {
		r.err = perr("quote truncated: certification data type %d declares %d bytes, only %d left in the %s", typ, size, len(r.b), r.what)
		return 0, nil
	}
	return typ, r.next(int(size), "certification data")
}

// Marshal encodes the header into its 48-byte layout.
func (h *Header) Marshal() []byte {
	b := make([]byte, HeaderSize)
	binary.LittleEndian.PutUint16(b[0:2], h.Version)
	binary.LittleEndian.PutUint16(b[2:4], h.AttKeyType)
	if h.Version >= 4 {
		binary.LittleEndian.PutUint32(b[4:8], h.TEEType)
	} else {
		binary.LittleEndian.PutUint16(b[8:10], h.QESVN)
		binary.LittleEndian.PutUint16(b[10:12], h.PCESVN)
	}
	copy(b[12:28], h.QEVendorID[:])
	copy(b[28:48], h.UserData[:])
	return b
}

// SignatureParts are the pieces of a quote's signature data, used to
// assemble a quote (the simulated TEE does this).
type SignatureParts struct {
	Signature   [SignatureSize]byte
	AttestKey   [AttestKeySize]byte
	QEReport    []byte // 384 bytes
	QEReportSig [SignatureSize]byte
	QEAuthData  []byte
	PCKChainPEM []byte
}

// AppendSignatureData appends the signature data for a quote of the given
// version (3: type 5 certification data directly; 4/5: type 6 wrapping 5)
// to signed (header and body) and returns the complete quote.
func AppendSignatureData(signed []byte, version uint16, p *SignatureParts) ([]byte, error) {
	if len(p.QEReport) != EnclaveReportSize {
		return nil, fmt.Errorf("QE report: %d bytes, want %d", len(p.QEReport), EnclaveReportSize)
	}
	if len(p.QEAuthData) > 0xffff {
		return nil, fmt.Errorf("QE authentication data too long: %d bytes", len(p.QEAuthData))
	}
	qeBlock := make([]byte, 0, EnclaveReportSize+SignatureSize+2+len(p.QEAuthData))
	qeBlock = append(qeBlock, p.QEReport...)
	qeBlock = append(qeBlock, p.QEReportSig[:]...)
	qeBlock = binary.LittleEndian.AppendUint16(qeBlock, uint16(len(p.QEAuthData)))
	qeBlock = append(qeBlock, p.QEAuthData...)
	certData := func(dst []byte, typ uint16, data []byte) []byte {
		dst = binary.LittleEndian.AppendUint16(dst, typ)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(data)))
		return append(dst, data...)
	}
	sig := append([]byte{}, p.Signature[:]...)
	sig = append(sig, p.AttestKey[:]...)
	switch version {
	case 3:
		sig = append(sig, qeBlock...)
		sig = certData(sig, CertDataPCKChain, p.PCKChainPEM)
	case 4, 5:
		inner := certData(qeBlock, CertDataPCKChain, p.PCKChainPEM)
		sig = certData(sig, CertDataQEReport, inner)
	default:
		return nil, fmt.Errorf("quote version %d not supported", version)
	}
	out := make([]byte, 0, len(signed)+4+len(sig))
	out = append(out, signed...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(sig)))
	return append(out, sig...), nil
}
