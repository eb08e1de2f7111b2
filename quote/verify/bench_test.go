package verify

import (
	"testing"

	"github.com/ppml-project/ppml/quote/abi"
)

func benchVerifier(b *testing.B, name string) (*Verifier, *vector) {
	v := loadVector(b, name)
	ver, err := New(Options{Now: at(v.at)})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ver.Verify(v.quote, v.col); err != nil {
		b.Fatal(err)
	}
	return ver, v
}

// BenchmarkVerifySGX is a full verification with warm caches (collateral
// and PCK chain checks done once per collateral / chain).
func BenchmarkVerifySGX(b *testing.B) {
	ver, v := benchVerifier(b, "sgx-phala")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ver.Verify(v.quote, v.col); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyTDX(b *testing.B) {
	ver, v := benchVerifier(b, "tdx-v4-oasis")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ver.Verify(v.quote, v.col); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifySGXCold verifies with a fresh Verifier each time (no
// cache: every chain, CRL and collateral signature is checked).
func BenchmarkVerifySGXCold(b *testing.B) {
	v := loadVector(b, "sgx-phala")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(v.quote, v.col, Options{Now: at(v.at)}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseQuote(b *testing.B) {
	v := loadVector(b, "sgx-phala")
	for b.Loop() {
		if _, err := abi.ParseQuote(v.quote); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPCKChain: PEM/X.509 decoding, two certificate signatures and the
// SGX extension (uncached).
func BenchmarkPCKChain(b *testing.B) {
	ver, v := benchVerifier(b, "sgx-phala")
	q, _ := abi.ParseQuote(v.quote)
	for b.Loop() {
		if pc := ver.checkPCKChain(q.PCKChainPEM); pc.err != nil {
			b.Fatal(pc.err)
		}
	}
}

// BenchmarkQuoteSignatures: QE report signature, attestation-key binding
// and quote signature (paid on every verification).
func BenchmarkQuoteSignatures(b *testing.B) {
	ver, v := benchVerifier(b, "sgx-phala")
	q, _ := abi.ParseQuote(v.quote)
	pc := ver.checkPCKChain(q.PCKChainPEM)
	checks := map[string]bool{}
	for b.Loop() {
		if e := checkQuoteSignatures(q, pc.leafKey, checks); e != nil {
			b.Fatal(e)
		}
	}
}

// BenchmarkCollateralSignatures: issuer chains, CRL signatures, TCB info
// and QE identity signatures and JSON decoding (uncached; once per
// collateral with a Verifier).
func BenchmarkCollateralSignatures(b *testing.B) {
	ver, v := benchVerifier(b, "sgx-phala")
	for b.Loop() {
		if p := ver.checkCollateral(v.col); p.err != nil {
			b.Fatal(p.err)
		}
	}
}

func benchTCB(b *testing.B, name string) {
	ver, v := benchVerifier(b, name)
	q, _ := abi.ParseQuote(v.quote)
	pc := ver.checkPCKChain(q.PCKChainPEM)
	p := ver.checkCollateral(v.col)
	for b.Loop() {
		if _, e := evaluate(q, pc.ext, p.tcbInfo, p.qeID); e != nil {
			b.Fatal(e)
		}
	}
}

func BenchmarkTCBEvaluationSGX(b *testing.B) { benchTCB(b, "sgx-phala") }
func BenchmarkTCBEvaluationTDX(b *testing.B) { benchTCB(b, "tdx-v4-oasis") }
