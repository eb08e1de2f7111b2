// Package pck decodes (and, for the simulated TEE, encodes) the Intel SGX
// extension (OID 1.2.840.113741.1.13.1) of PCK certificates: PPID, TCB
// component SVNs, PCESVN, CPUSVN, PCE-ID, FMSPC and SGX type.
package pck

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
)

// OIDs of the SGX extension and its items.
var (
	OIDSGXExtension = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}
	oidPPID         = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 1}
	oidTCB          = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 2}
	oidPCEID        = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 3}
	oidFMSPC        = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 4}
	oidSGXType      = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 5}
)

// Extension holds the decoded SGX extension.
type Extension struct {
	PPID    []byte
	CompSVN [16]byte
	PCESVN  uint16
	CPUSVN  [16]byte
	PCEID   [2]byte
	FMSPC   [6]byte
	SGXType int
}

type item struct {
	OID   asn1.ObjectIdentifier
	Value asn1.RawValue
}

// FromCertificate finds and decodes the SGX extension of a PCK certificate.
func FromCertificate(c *x509.Certificate) (*Extension, error) {
	for _, e := range c.Extensions {
		if e.Id.Equal(OIDSGXExtension) {
			return Parse(e.Value)
		}
	}
	return nil, fmt.Errorf("pck: certificate %q has no SGX extension (OID %s)", c.Subject.CommonName, OIDSGXExtension)
}

// Parse decodes the DER value of the SGX extension.
func Parse(der []byte) (*Extension, error) {
	var items []item
	rest, err := asn1.Unmarshal(der, &items)
	if err != nil {
		return nil, fmt.Errorf("pck: SGX extension: %v", err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("pck: SGX extension: %d trailing bytes", len(rest))
	}
	x := &Extension{}
	var haveTCB, havePCEID, haveFMSPC bool
	for _, it := range items {
		switch {
		case it.OID.Equal(oidPPID):
			if x.PPID, err = octets(it.Value, 16, "PPID"); err != nil {
				return nil, err
			}
		case it.OID.Equal(oidTCB):
			if err := x.parseTCB(it.Value); err != nil {
				return nil, err
			}
			haveTCB = true
		case it.OID.Equal(oidPCEID):
			v, err := octets(it.Value, 2, "PCE-ID")
			if err != nil {
				return nil, err
			}
			copy(x.PCEID[:], v)
			havePCEID = true
		case it.OID.Equal(oidFMSPC):
			v, err := octets(it.Value, 6, "FMSPC")
			if err != nil {
				return nil, err
			}
			copy(x.FMSPC[:], v)
			haveFMSPC = true
		case it.OID.Equal(oidSGXType):
			var e asn1.Enumerated
			if _, err := asn1.Unmarshal(it.Value.FullBytes, &e); err != nil {
				return nil, fmt.Errorf("pck: SGX type: %v", err)
			}
			x.SGXType = int(e)
		}
	}
	switch {
	case !haveTCB:
		return nil, fmt.Errorf("pck: SGX extension has no TCB item (%s)", oidTCB)
	case !havePCEID:
		return nil, fmt.Errorf("pck: SGX extension has no PCE-ID item (%s)", oidPCEID)
	case !haveFMSPC:
		return nil, fmt.Errorf("pck: SGX extension has no FMSPC item (%s)", oidFMSPC)
	}
	return x, nil
}

func octets(v asn1.RawValue, n int, name string) ([]byte, error) {
	var b []byte
	if _, err := asn1.Unmarshal(v.FullBytes, &b); err != nil {
		return nil, fmt.Errorf("pck: %s: %v", name, err)
	}
	if len(b) != n {
		return nil, fmt.Errorf("pck: %s is %d bytes, want %d", name, len(b), n)
	}
	return b, nil
}

func (x *Extension) parseTCB(v asn1.RawValue) error {
	var items []item
	if _, err := asn1.Unmarshal(v.FullBytes, &items); err != nil {
		return fmt.Errorf("pck: TCB item: %v", err)
	}
	var seen [19]bool
	for _, it := range items {
		if len(it.OID) != len(oidTCB)+1 || !it.OID[:len(oidTCB)].Equal(oidTCB) {
			continue
		}
		n := it.OID[len(oidTCB)]
		switch {
		case n >= 1 && n <= 16:
			var svn int
			if _, err := asn1.Unmarshal(it.Value.FullBytes, &svn); err != nil {
				return fmt.Errorf("pck: TCB component %d: %v", n, err)
			}
			if svn < 0 || svn > 255 {
				return fmt.Errorf("pck: TCB component %d SVN %d out of range 0..255", n, svn)
			}
			x.CompSVN[n-1] = byte(svn)
		case n == 17:
			var svn int
			if _, err := asn1.Unmarshal(it.Value.FullBytes, &svn); err != nil {
				return fmt.Errorf("pck: PCESVN: %v", err)
			}
			if svn < 0 || svn > 65535 {
				return fmt.Errorf("pck: PCESVN %d out of range 0..65535", svn)
			}
			x.PCESVN = uint16(svn)
		case n == 18:
			b, err := octets(it.Value, 16, "CPUSVN")
			if err != nil {
				return err
			}
			copy(x.CPUSVN[:], b)
		default:
			continue
		}
		seen[n] = true
	}
	for n := 1; n <= 17; n++ {
		if !seen[n] {
			return fmt.Errorf("pck: TCB item lacks %s.%d", oidTCB, n)
		}
	}
	return nil
}

type intItem struct {
	OID   asn1.ObjectIdentifier
	Value int
}

type bytesItem struct {
	OID   asn1.ObjectIdentifier
	Value []byte
}

type enumItem struct {
	OID   asn1.ObjectIdentifier
	Value asn1.Enumerated
}

type rawItem struct {
	OID   asn1.ObjectIdentifier
	Value asn1.RawValue
}

// Marshal encodes the extension value in Intel's layout (used by the
// simulated TEE to issue PCK certificates).
func (x *Extension) Marshal() ([]byte, error) {
	var tcb []asn1.RawValue
	add := func(v any) error {
		b, err := asn1.Marshal(v)
		if err != nil {
			return err
		}
		tcb = append(tcb, asn1.RawValue{FullBytes: b})
		return nil
	}
	sub := func(n int) asn1.ObjectIdentifier {
		return append(append(asn1.ObjectIdentifier{}, oidTCB...), n)
	}
	for i := 0; i < 16; i++ {
		if err := add(intItem{sub(i + 1), int(x.CompSVN[i])}); err != nil {
			return nil, err
		}
	}
	if err := add(intItem{sub(17), int(x.PCESVN)}); err != nil {
		return nil, err
	}
	if err := add(bytesItem{sub(18), x.CPUSVN[:]}); err != nil {
		return nil, err
	}
	tcbSeq, err := asn1.Marshal(tcb)
	if err != nil {
		return nil, err
	}
	ppid := x.PPID
	if len(ppid) != 16 {
		ppid = make([]byte, 16)
	}
	top := []any{
		bytesItem{oidPPID, ppid},
		rawItem{oidTCB, asn1.RawValue{FullBytes: tcbSeq}},
		bytesItem{oidPCEID, x.PCEID[:]},
		bytesItem{oidFMSPC, x.FMSPC[:]},
		enumItem{oidSGXType, asn1.Enumerated(x.SGXType)},
	}
	var raws []asn1.RawValue
	for _, t := range top {
		b, err := asn1.Marshal(t)
		if err != nil {
			return nil, err
		}
		raws = append(raws, asn1.RawValue{FullBytes: b})
	}
	return asn1.Marshal(raws)
}
