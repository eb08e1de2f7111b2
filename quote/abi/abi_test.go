package abi

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/quote/quotetest"
)

// vecDir is the repository's DCAP vector set (quote/testdata/dcap).
var vecDir = quotetest.Dir()

func readVec(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vecDir, name, "quote.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseSGX(t *testing.T) {
	b := readVec(t, "sgx-phala")
	q, err := ParseQuote(b)
	if err != nil {
		t.Fatal(err)
	}
	if q.TEE != SGX || q.Version() != 3 || q.SGXBody == nil || len(q.Signed) != 432 {
		t.Fatalf("bad parse: %+v", q.Header)
	}
	if got := hex.EncodeToString(q.SGXBody.MREnclave[:]); got != "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb" {
		t.Fatalf("mr_enclave %s", got)
	}
	if q.QEReport.ISVSVN != 10 || q.TrailingBytes != 0 {
		t.Fatalf("qe isvsvn %d trailing %d", q.QEReport.ISVSVN, q.TrailingBytes)
	}
	if !bytes.HasPrefix(q.PCKChainPEM, []byte("-----BEGIN CERTIFICATE-----")) || bytes.Count(q.PCKChainPEM, []byte("BEGIN CERTIFICATE")) != 3 {
		t.Fatal("PCK chain not extracted")
	}
	// Re-marshalling the parsed parts gives back the same bytes.
	if !bytes.Equal(q.SGXBody.Marshal(), q.RawBody) || !bytes.Equal(q.QEReport.Marshal(), q.RawQEReport) {
		t.Fatal("marshal round trip differs")
	}
	h := q.Header
	if !bytes.Equal(h.Marshal(), b[:48]) {
		t.Fatal("header round trip differs")
	}
}

func TestParseTDX(t *testing.T) {
	b := readVec(t, "tdx-v4-oasis")
	q, err := ParseQuote(b)
	if err != nil {
		t.Fatal(err)
	}
	if q.TEE != TDX || q.Version() != 4 || q.TDBody == nil || len(q.Signed) != 632 || q.OuterCertDataType != 6 {
		t.Fatalf("bad parse")
	}
	if got := hex.EncodeToString(q.TDBody.TEETCBSVN[:]); got != "05010700000000000000000000000000" {
		t.Fatalf("tee_tcb_svn %s", got)
	}
	if !bytes.Equal(q.TDBody.Marshal(), q.RawBody) {
		t.Fatal("TD report round trip differs")
	}
	// Reassemble the quote from its parts.
	p := &SignatureParts{Signature: q.Signature, AttestKey: q.AttestKey, QEReport: q.RawQEReport,
		QEReportSig: q.QEReportSig, QEAuthData: q.QEAuthData}
	// The stored chain may have trailing NULs; use the raw inner cert data.
	p.PCKChainPEM = q.PCKChainPEM
	out, err := AppendSignatureData(q.Signed, 4, p)
	if err != nil {
		t.Fatal(err)
	}
	q2, err := ParseQuote(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(q2.PCKChainPEM, q.PCKChainPEM) || q2.Signature != q.Signature {
		t.Fatal("reassembled quote differs")
	}
}

// toV5 rewrites a v4 TDX quote as v5 with body type 2 (signatures no longer
// valid, layout correct).
func toV5(v4 []byte, bodyType uint16, extra int) []byte {
	out := slices.Clone(v4[:48])
	binary.LittleEndian.PutUint16(out[0:2], 5)
	out = binary.LittleEndian.AppendUint16(out, bodyType)
	out = binary.LittleEndian.AppendUint32(out, uint32(584+extra))
	out = append(out, v4[48:632]...)
	out = append(out, make([]byte, extra)...)
	return append(out, v4[632:]...)
}

func TestParseV5(t *testing.T) {
	b := readVec(t, "tdx-v4-oasis")
	q, err := ParseQuote(toV5(b, BodyTypeTD10, 0))
	if err != nil {
		t.Fatal(err)
	}
	if q.Version() != 5 || q.TDBody == nil || q.TDBody.V15 || len(q.Signed) != 638 {
		t.Fatalf("v5 type 2 parse wrong")
	}
	q, err = ParseQuote(toV5(b, BodyTypeTD15, 64))
	if err != nil {
		t.Fatal(err)
	}
	if !q.TDBody.V15 || len(q.Signed) != 54+648 {
		t.Fatal("v5 type 3 parse wrong")
	}
	if _, err := ParseQuote(toV5(b, BodyTypeTD15, 0)); err == nil || !strings.Contains(err.Error(), "declares size 584, want 648") {
		t.Fatalf("size mismatch not detected: %v", err)
	}
}

func TestPreciseErrors(t *testing.T) {
	sgx := readVec(t, "sgx-phala")
	tdx := readVec(t, "tdx-v4-oasis")
	set16 := func(b []byte, off int, v uint16) []byte {
		c := slices.Clone(b)
		binary.LittleEndian.PutUint16(c[off:], v)
		return c
	}
	cases := []struct {
		in   []byte
		want string
	}{
		{sgx[:10], "quote too short: 10 bytes, header needs 48"},
		{sgx[:432], "quote too short: 432 bytes, signature data length field needs 436"},
		{sgx[:400], "quote too short: 400 bytes, header+body need 432"},
		{tdx[:600], "quote too short: 600 bytes, header+body need 632"},
		{sgx[:1000], "quote truncated: signature data declares"},
		{set16(sgx, 0, 2), "quote: version 2 not supported (want 3, 4 or 5)"},
		{set16(sgx, 2, 3), "quote: attestation key type 3 not supported"},
		{set16(sgx, 12, 0), "is not Intel's"},
		{set16(sgx, 1014+32, 3), "quote: certification data type 3 not supported (want 5)"},
		{set16(tdx, 764, 5), "quote: certification data type 5 not supported (want 6)"},
		{set16(tdx, 770+450+32, 4), "certification data type 4 not supported (want 5 inside type 6)"},
		{set16(sgx, 1012, 0xffff), "quote truncated: QE authentication data needs 65535 bytes"},
	}
	for _, c := range cases {
		_, err := ParseQuote(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
	// Every truncation is an error, never a panic.
	for n := 0; n < len(sgx); n += 7 {
		if _, err := ParseQuote(sgx[:n]); err == nil {
			t.Fatalf("truncated quote of %d bytes parsed", n)
		}
	}
}

func FuzzParseQuote(f *testing.F) {
	for _, n := range []string{"sgx-phala", "tdx-v4-oasis", "tdx-v4-oasis-out-of-date"} {
		b := quotetest.Read(f, n, "quote.bin")
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseQuote(b)
		if err != nil {
			if q != nil {
				t.Fatal("quote returned with error")
			}
			return
		}
		if len(q.Signed) > len(b) || (q.SGXBody == nil) == (q.TDBody == nil) || q.QEReport == nil {
			t.Fatal("inconsistent quote")
		}
		// The parsed parts are exactly the bytes they came from: the signed
		// region is the quote's prefix, and header, body and QE report
		// re-encode to the bytes that were signed.
		// The header's reserved bytes (4-7 in v3, 8-11 in v4/v5) are signed
		// but not decoded, and Marshal writes them as zero (seed
		// db231f8c47c5eea7).
		header := bytes.Clone(b[:48])
		if q.Version() == 3 {
			clear(header[4:8])
		} else {
			clear(header[8:12])
		}
		if !bytes.Equal(q.Signed, b[:len(q.Signed)]) || !bytes.Equal(q.Header.Marshal(), header) || !bytes.HasSuffix(q.Signed, q.RawBody) {
			t.Fatal("signed region is not the quote's header and body")
		}
		if v := q.Version(); v != 3 && v != 4 && v != 5 {
			t.Fatalf("version %d accepted", v)
		}
		// The decoded reports are the raw bytes' fields (reserved bytes
		// aside, which Marshal writes as zero; seed a430a830745fa7be), and
		// decoding is stable through Marshal.
		if q.SGXBody != nil {
			if r, err := ParseEnclaveReport(q.RawBody); err != nil || *r != *q.SGXBody {
				t.Fatal("SGX body is not the decoding of its bytes")
			}
			if r, _ := ParseEnclaveReport(q.SGXBody.Marshal()); r == nil || *r != *q.SGXBody {
				t.Fatal("SGX body changes through Marshal")
			}
		}
		if q.TDBody != nil {
			if r, err := ParseTDReport(q.RawBody); err != nil || !reflect.DeepEqual(r, q.TDBody) {
				t.Fatal("TD body is not the decoding of its bytes")
			}
			if r, _ := ParseTDReport(q.TDBody.Marshal()); !reflect.DeepEqual(r, q.TDBody) {
				t.Fatal("TD body changes through Marshal")
			}
		}
		if len(q.RawQEReport) != EnclaveReportSize {
			t.Fatalf("QE report of %d bytes", len(q.RawQEReport))
		}
		if r, err := ParseEnclaveReport(q.RawQEReport); err != nil || *r != *q.QEReport {
			t.Fatal("QE report is not the decoding of its bytes")
		}
		if r, _ := ParseEnclaveReport(q.QEReport.Marshal()); r == nil || *r != *q.QEReport {
			t.Fatal("QE report changes through Marshal")
		}
		if q.TrailingBytes < 0 || q.TrailingBytes > len(b)-len(q.Signed) {
			t.Fatalf("trailing bytes %d of %d", q.TrailingBytes, len(b))
		}
	})
}

// A v3 header has no TEE type: its bytes 4-7 are reserved. Whatever they
// hold, the quote parses as SGX, and the bytes stay in the signed region, so
// the quote signature is what rejects a change to them.
func TestV3ReservedBytesAreSignedNotDecoded(t *testing.T) {
	b := slices.Clone(readVec(t, "sgx-phala"))
	binary.LittleEndian.PutUint32(b[4:8], TEETypeTDX)
	q, err := ParseQuote(b)
	if err != nil {
		t.Fatal(err)
	}
	if q.TEE != SGX || q.Header.TEEType != 0 || !bytes.Equal(q.Signed[4:8], b[4:8]) {
		t.Fatalf("TEE %s, header tee type %#x, signed bytes 4-7 %x", q.TEE, q.Header.TEEType, q.Signed[4:8])
	}
}

// parts is the signature data of a parsed quote, for reassembling variants.
func parts(q *Quote) *SignatureParts {
	return &SignatureParts{Signature: q.Signature, AttestKey: q.AttestKey, QEReport: q.RawQEReport,
		QEReportSig: q.QEReportSig, QEAuthData: q.QEAuthData, PCKChainPEM: q.PCKChainPEM}
}

func mustParse(t *testing.T, b []byte) *Quote {
	t.Helper()
	q, err := ParseQuote(b)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// Each length check at its exact boundary: one byte short is refused with
// the message naming what is missing; exactly enough passes that check and
// fails (or not) at the next.
func TestLengthBoundaries(t *testing.T) {
	sgx := readVec(t, "sgx-phala")
	v5 := toV5(readVec(t, "tdx-v4-oasis"), BodyTypeTD10, 0)
	if _, err := ParseHeader(sgx[:47]); err == nil || err.Error() != "quote too short: 47 bytes, header needs 48" {
		t.Errorf("47-byte header: %v", err)
	}
	h, err := ParseHeader(sgx[:48])
	if err != nil || h.Version != 3 || h.AttKeyType != 2 || h.QESVN != binary.LittleEndian.Uint16(sgx[8:]) ||
		h.PCESVN != binary.LittleEndian.Uint16(sgx[10:]) || h.QEVendorID != IntelQEVendorID || !bytes.Equal(h.UserData[:], sgx[28:48]) {
		t.Errorf("48-byte header: %+v, %v", h, err)
	}
	sigLen := binary.LittleEndian.Uint32(sgx[432:])
	cases := []struct {
		in   []byte
		want string
	}{
		{sgx[:48], "quote too short: 48 bytes, header+body need 432"},
		{v5[:48], "quote too short: 48 bytes, header+body descriptor need 54"},
		{v5[:53], "quote too short: 53 bytes, header+body descriptor need 54"},
		{v5[:54], "quote too short: 54 bytes, header+body need 638"},
		{v5[:641], "quote too short: 641 bytes, signature data length field needs 642"},
		{sgx[:435], "quote too short: 435 bytes, signature data length field needs 436"},
		{sgx[:436], fmt.Sprintf("quote truncated: signature data declares %d bytes, only 0 present", sigLen)},
		{sgx[:1000], fmt.Sprintf("quote truncated: signature data declares %d bytes, only 564 present", sigLen)},
		{sgx[:len(sgx)-1], fmt.Sprintf("quote truncated: signature data declares %d bytes, only %d present", sigLen, sigLen-1)},
	}
	for _, c := range cases {
		if _, err := ParseQuote(c.in); err == nil || err.Error() != c.want {
			t.Errorf("%d bytes: got %v, want %q", len(c.in), err, c.want)
		}
	}
}

// Zero-length fields are valid layout: empty QE authentication data parses;
// an empty PCK chain (or one of only NULs) is refused as empty, not as
// truncated.
func TestEmptyFields(t *testing.T) {
	q := mustParse(t, readVec(t, "sgx-phala"))
	for _, version := range []uint16{3, 4} {
		signed, p := q.Signed, parts(q)
		if version == 4 {
			td := mustParse(t, readVec(t, "tdx-v4-oasis"))
			signed, p = td.Signed, parts(td)
		}
		p.QEAuthData = nil
		b, err := AppendSignatureData(signed, version, p)
		if err != nil {
			t.Fatal(err)
		}
		got := mustParse(t, b)
		if len(got.QEAuthData) != 0 || !bytes.Equal(got.PCKChainPEM, p.PCKChainPEM) || got.TrailingBytes != 0 {
			t.Errorf("v%d: empty QE auth data: auth %d bytes, chain %d bytes", version, len(got.QEAuthData), len(got.PCKChainPEM))
		}
		for _, chain := range [][]byte{nil, {0, 0, 0}} {
			p.PCKChainPEM = chain
			b, err := AppendSignatureData(signed, version, p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParseQuote(b); err == nil || err.Error() != "quote: PCK certificate chain is empty" {
				t.Errorf("v%d: PCK chain %q: %v", version, chain, err)
			}
		}
	}
}

// QE authentication data has a 16-bit length: 65535 bytes is the most a
// quote can carry, and it round-trips; one more is refused.
func TestAppendSignatureDataLimits(t *testing.T) {
	q := mustParse(t, readVec(t, "sgx-phala"))
	p := parts(q)
	p.QEAuthData = bytes.Repeat([]byte{0xa5}, 0xffff)
	b, err := AppendSignatureData(q.Signed, 3, p)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustParse(t, b); !bytes.Equal(got.QEAuthData, p.QEAuthData) || !bytes.Equal(got.PCKChainPEM, q.PCKChainPEM) {
		t.Fatal("65535 bytes of QE authentication data do not round-trip")
	}
	p.QEAuthData = append(p.QEAuthData, 0)
	if _, err := AppendSignatureData(q.Signed, 3, p); err == nil || err.Error() != "QE authentication data too long: 65536 bytes" {
		t.Errorf("65536 bytes: %v", err)
	}
	p = parts(q)
	p.QEReport = p.QEReport[:383]
	if _, err := AppendSignatureData(q.Signed, 3, p); err == nil || err.Error() != "QE report: 383 bytes, want 384" {
		t.Errorf("383-byte QE report: %v", err)
	}
	if _, err := AppendSignatureData(q.Signed, 6, parts(q)); err == nil || err.Error() != "quote version 6 not supported" {
		t.Errorf("version 6: %v", err)
	}
}

// Debug is exactly the DEBUG bit: ATTRIBUTES.FLAGS bit 1 for an enclave,
// TD_ATTRIBUTES bit 0 for a TD; neighbouring bits do not count.
func TestDebugBits(t *testing.T) {
	for _, c := range []struct {
		flags uint64
		debug bool
	}{{0, false}, {1, false}, {2, true}, {3, true}, {^uint64(2), false}, {1 << 9, false}} {
		var r EnclaveReport
		binary.LittleEndian.PutUint64(r.Attributes[:8], c.flags)
		if r.Flags() != c.flags || r.Debug() != c.debug {
			t.Errorf("enclave flags %#x: Flags %#x, Debug %v, want %v", c.flags, r.Flags(), r.Debug(), c.debug)
		}
	}
	for _, c := range []struct {
		attr  [8]byte
		debug bool
	}{{[8]byte{}, false}, {[8]byte{1}, true}, {[8]byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, false}, {[8]byte{0, 1}, false}} {
		r := TDReport{TDAttributes: c.attr}
		if r.Debug() != c.debug {
			t.Errorf("TD attributes %x: Debug %v, want %v", c.attr, r.Debug(), c.debug)
		}
	}
}

// ReportData is the body's 64 report-data bytes for either TEE.
func TestReportData(t *testing.T) {
	sgx := readVec(t, "sgx-phala")
	tdx := readVec(t, "tdx-v4-oasis")
	if got := mustParse(t, sgx).ReportData(); !bytes.Equal(got, sgx[48+320:48+384]) {
		t.Errorf("SGX report data %x", got)
	}
	if got := mustParse(t, tdx).ReportData(); !bytes.Equal(got, tdx[48+520:48+584]) {
		t.Errorf("TDX report data %x", got)
	}
}
