package verify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"

	"github.com/ppml-project/ppml/quote/collateral"
	"github.com/ppml-project/ppml/quote/pck"
)

// prepared is collateral whose time-independent checks (chains to the
// trust anchor, CRL and JSON signatures, decoding) have been done.
type prepared struct {
	err *Error

	tcbSigner, qeSigner *x509.Certificate
	tcbInfo             *collateral.TCBInfo
	qeID                *collateral.QEIdentity

	hasCRL                  bool
	rootCRL, pckCRL         *x509.RevocationList
	pckCRLIssuer            *x509.Certificate
	rootRevoked, pckRevoked map[string]bool
}

func (v *Verifier) prepare(col *collateral.Collateral) (*prepared, *Error) {
	p := v.cols.GetOrCompute(col.Hash(), func() *prepared { return v.checkCollateral(col) })
	if p.err != nil {
		return nil, p.err
	}
	return p, nil
}

// signerChain checks an issuer chain of exactly [signer, root] where root is
// the trust anchor, and returns the signer.
func (v *Verifier) signerChain(pemText, field, wantCN, code string) (*x509.Certificate, *Error) {
	certs, err := collateral.ParseChain([]byte(pemText))
	if err != nil {
		return nil, fail(code, "%s: %v", field, err)
	}
	if len(certs) != 2 {
		return nil, fail(code, "%s has %d certificates, want 2 (signer, root)", field, len(certs))
	}
	if !bytes.Equal(certs[1].Raw, v.root.Raw) {
		return nil, fail(code, "%s: root %q is not the pinned trust anchor %q", field, certs[1].Subject.CommonName, v.root.Subject.CommonName)
	}
	s := certs[0]
	if wantCN != "" && s.Subject.CommonName != wantCN {
		return nil, fail(code, "%s: signer common name %q, want %q", field, s.Subject.CommonName, wantCN)
	}
	if e := checkLink(s, v.root, field+" signer", code); e != nil {
		return nil, e
	}
	return s, nil
}

func verifyRawSig(c *x509.Certificate, msg []byte, sigHex string) bool {
	k, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return false
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil || len(sig) != 64 {
		return false
	}
	h := sha256.Sum256(msg)
	r, s := rawSig(sig)
	return ecdsa.Verify(k, h[:], r, s)
}

func (v *Verifier) checkCollateral(col *collateral.Collateral) *prepared {
	if err := col.Validate(); err != nil {
		return &prepared{err: fail(FailFormat, "%v", err)}
	}
	p := &prepared{}
	var e *Error
	if p.tcbSigner, e = v.signerChain(col.TCBInfoIssuerChain, "tcb_info_issuer_chain", CNTCBSigning, FailTCBInfoChain); e != nil {
		return &prepared{err: e}
	}
	if !verifyRawSig(p.tcbSigner, []byte(col.TCBInfo), col.TCBInfoSignature) {
		return &prepared{err: fail(FailTCBInfoSignature, "tcb_info_signature does not verify over the tcb_info bytes with the TCB signing key")}
	}
	if p.qeSigner, e = v.signerChain(col.QEIdentityIssuerChain, "qe_identity_issuer_chain", CNTCBSigning, FailQEIdentityChain); e != nil {
		return &prepared{err: e}
	}
	if !verifyRawSig(p.qeSigner, []byte(col.QEIdentity), col.QEIdentitySignature) {
		return &prepared{err: fail(FailQEIdentitySignature, "qe_identity_signature does not verify over the qe_identity bytes with the signing key")}
	}
	var err error
	if p.tcbInfo, err = collateral.ParseTCBInfo([]byte(col.TCBInfo)); err != nil {
		return &prepared{err: fail(FailTCBInfoMismatch, "%v", err)}
	}
	if p.qeID, err = collateral.ParseQEIdentity([]byte(col.QEIdentity)); err != nil {
		return &prepared{err: fail(FailQEIdentityMismatch, "%v", err)}
	}
	if !col.HasCRLs() {
		return p
	}
	p.hasCRL = true
	parse := func(field, s string, issuer *x509.Certificate) (*x509.RevocationList, map[string]bool, *Error) {
		der, err := collateral.DecodeCRL(s)
		if err != nil {
			return nil, nil, fail(FailPCKCRL, "%s: %v", field, err)
		}
		l, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, nil, fail(FailPCKCRL, "%s: %v", field, err)
		}
		if err := l.CheckSignatureFrom(issuer); err != nil {
			return nil, nil, fail(FailPCKCRL, "%s is not signed by %q: %v", field, issuer.Subject.CommonName, err)
		}
		m := map[string]bool{}
		for _, r := range l.RevokedCertificateEntries {
			if r.SerialNumber != nil {
				m[r.SerialNumber.String()] = true
			}
		}
		return l, m, nil
	}
	if p.rootCRL, p.rootRevoked, e = parse("root_ca_crl", col.RootCACRL, v.root); e != nil {
		return &prepared{err: e}
	}
	if p.pckCRLIssuer, e = v.signerChain(col.PCKCRLIssuerChain, "pck_crl_issuer_chain", "", FailPCKCRL); e != nil {
		return &prepared{err: e}
	}
	if cn := p.pckCRLIssuer.Subject.CommonName; cn != pck.CNPlatformCA && cn != pck.CNProcessorCA {
		return &prepared{err: fail(FailPCKCRL, "pck_crl_issuer_chain: issuer common name %q is neither %q nor %q", cn, pck.CNPlatformCA, pck.CNProcessorCA)}
	}
	if p.pckCRL, p.pckRevoked, e = parse("pck_crl", col.PCKCRL, p.pckCRLIssuer); e != nil {
		return &prepared{err: e}
	}
	if p.rootRevoked[p.pckCRLIssuer.SerialNumber.String()] {
		return &prepared{err: fail(FailPCKRevoked, "PCK CRL issuer %q is revoked by the root CA CRL", p.pckCRLIssuer.Subject.CommonName)}
	}
	return p
}
