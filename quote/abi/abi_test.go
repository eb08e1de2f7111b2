package abi

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
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
