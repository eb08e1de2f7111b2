package pck

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/quote/quotetest"
)

func TestRoundTrip(t *testing.T) {
	x := &Extension{CompSVN: [16]byte{1, 2, 3, 255}, PCESVN: 65535, CPUSVN: [16]byte{9}, PCEID: [2]byte{0, 1},
		FMSPC: [6]byte{0xa, 0xb, 0xc, 0xd, 0xe, 0xf}, SGXType: 2, PPID: bytes.Repeat([]byte{7}, 16)}
	der, err := x.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	y, err := Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	if y.CompSVN != x.CompSVN || y.PCESVN != x.PCESVN || y.CPUSVN != x.CPUSVN || y.PCEID != x.PCEID || y.FMSPC != x.FMSPC || y.SGXType != 2 || !bytes.Equal(y.PPID, x.PPID) {
		t.Fatalf("round trip: %+v", y)
	}
	for n := range der {
		if _, err := Parse(der[:n]); err == nil {
			t.Fatalf("truncated extension (%d bytes) parsed", n)
		}
	}
	if _, err := Parse([]byte{0x30, 0x00}); err == nil || !strings.Contains(err.Error(), "no TCB item") {
		t.Fatalf("empty: %v", err)
	}
}

// FuzzParseExtension: whatever parses re-encodes to an extension that
// parses to the same values (the parser keeps nothing it cannot stand
// behind), and the real PCK certificates' extensions are among the seeds.
func FuzzParseExtension(f *testing.F) {
	x := &Extension{CompSVN: [16]byte{1, 2}, PCESVN: 13}
	der, _ := x.Marshal()
	f.Add(der)
	f.Add([]byte{0x30, 0x00})
	for _, n := range quotetest.Names {
		f.Add(leafExtension(f, quotetest.Read(f, n, "quote.bin")))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := Parse(b)
		if err != nil {
			if x != nil {
				t.Fatal("extension returned with an error")
			}
			return
		}
		if x.PPID != nil && len(x.PPID) != 16 {
			t.Fatalf("PPID of %d bytes accepted", len(x.PPID))
		}
		der, err := x.Marshal()
		if err != nil {
			t.Fatalf("parsed extension does not re-encode: %v", err)
		}
		y, err := Parse(der)
		if err != nil {
			t.Fatalf("re-encoded extension does not parse: %v", err)
		}
		if y.CompSVN != x.CompSVN || y.PCESVN != x.PCESVN || y.CPUSVN != x.CPUSVN || y.PCEID != x.PCEID || y.FMSPC != x.FMSPC || y.SGXType != x.SGXType {
			t.Fatalf("round trip changed the extension: %+v -> %+v", x, y)
		}
	})
}

// leafExtension is the SGX extension of the PCK leaf certificate embedded in
// a real quote (the first PEM certificate in it).
func leafExtension(t testing.TB, quote []byte) []byte {
	t.Helper()
	i := bytes.Index(quote, []byte("-----BEGIN CERTIFICATE-----"))
	if i < 0 {
		t.Fatal("no PEM certificate in the quote")
	}
	blk, _ := pem.Decode(quote[i:])
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range c.Extensions {
		if e.Id.Equal(OIDSGXExtension) {
			return e.Value
		}
	}
	t.Fatal("PCK leaf without SGX extension")
	return nil
}

// TestRealExtensions parses the PCK leaves of the vectors to the FMSPCs
// their expected.json names.
func TestRealExtensions(t *testing.T) {
	for _, n := range quotetest.Names {
		x, err := Parse(leafExtension(t, quotetest.Read(t, n, "quote.bin")))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := hex.EncodeToString(x.FMSPC[:]), quotetest.Load(t, n).Expected["fmspc"]; got != want {
			t.Errorf("%s: FMSPC %s, want %v", n, got, want)
		}
	}
}
