package pck

import (
	"bytes"
	"strings"
	"testing"
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

func FuzzParseExtension(f *testing.F) {
	x := &Extension{CompSVN: [16]byte{1, 2}, PCESVN: 13}
	der, _ := x.Marshal()
	f.Add(der)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		Parse(b)
	})
}
