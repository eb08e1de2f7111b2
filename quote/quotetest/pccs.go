package quotetest

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// PCCS is a PCCS-like HTTPS server on loopback serving one vector's
// collateral over the PCS v4 API (paths, issuer-chain headers, DER CRLs),
// and counting what it is asked.
type PCCS struct {
	*httptest.Server
	fetches  atomic.Int32 // TCB info requests: one per collateral fetch
	requests atomic.Int32
	failing  atomic.Bool
	delay    atomic.Int64
}

// NewPCCS serves the collateral of vector name until the test ends.
func NewPCCS(t testing.TB, name string) *PCCS {
	t.Helper()
	// The PCS v4 names, written out here rather than taken from
	// quote/collateral: this server is the fetcher's counterpart, not its
	// mirror (and quote/pck's tests, which quote/collateral imports, use
	// this package).
	var c struct {
		PCKCRLIssuerChain     string `json:"pck_crl_issuer_chain"`
		RootCACRL             string `json:"root_ca_crl"`
		PCKCRL                string `json:"pck_crl"`
		TCBInfoIssuerChain    string `json:"tcb_info_issuer_chain"`
		TCBInfo               string `json:"tcb_info"`
		TCBInfoSignature      string `json:"tcb_info_signature"`
		QEIdentityIssuerChain string `json:"qe_identity_issuer_chain"`
		QEIdentity            string `json:"qe_identity"`
		QEIdentitySignature   string `json:"qe_identity_signature"`
	}
	if err := json.Unmarshal(Read(t, name, "collateral.json"), &c); err != nil {
		t.Fatalf("%s/collateral.json: %v", name, err)
	}
	var ti struct {
		FMSPC string `json:"fmspc"`
	}
	if err := json.Unmarshal([]byte(c.TCBInfo), &ti); err != nil {
		t.Fatal(err)
	}
	tee := "sgx"
	if strings.Contains(name, "tdx") {
		tee = "tdx"
	}
	rootCRL, _ := hex.DecodeString(c.RootCACRL)
	pckCRL, _ := hex.DecodeString(c.PCKCRL)
	p := &PCCS{}
	mux := http.NewServeMux()
	mux.HandleFunc("/sgx/certification/v4/pckcrl", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("SGX-PCK-CRL-Issuer-Chain", url.PathEscape(c.PCKCRLIssuerChain))
		w.Write(pckCRL)
	})
	mux.HandleFunc("/sgx/certification/v4/rootcacrl", func(w http.ResponseWriter, r *http.Request) {
		w.Write(rootCRL)
	})
	mux.HandleFunc("/"+tee+"/certification/v4/tcb", func(w http.ResponseWriter, r *http.Request) {
		p.fetches.Add(1)
		if !strings.EqualFold(r.URL.Query().Get("fmspc"), ti.FMSPC) {
			http.Error(w, "no TCB info for this FMSPC", http.StatusNotFound)
			return
		}
		w.Header().Set("TCB-Info-Issuer-Chain", url.PathEscape(c.TCBInfoIssuerChain))
		w.Write([]byte(`{"tcbInfo":` + c.TCBInfo + `,"signature":"` + c.TCBInfoSignature + `"}`))
	})
	mux.HandleFunc("/"+tee+"/certification/v4/qe/identity", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("SGX-Enclave-Identity-Issuer-Chain", url.PathEscape(c.QEIdentityIssuerChain))
		w.Write([]byte(`{"enclaveIdentity":` + c.QEIdentity + `,"signature":"` + c.QEIdentitySignature + `"}`))
	})
	p.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		time.Sleep(time.Duration(p.delay.Load()))
		if p.failing.Load() {
			http.Error(w, "PCCS unavailable", http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// Fetches is the number of collateral fetches asked for (TCB info
// requests), Requests that of all requests.
func (p *PCCS) Fetches() int  { return int(p.fetches.Load()) }
func (p *PCCS) Requests() int { return int(p.requests.Load()) }

// SetFailing makes every request fail with 503 (or not).
func (p *PCCS) SetFailing(on bool) { p.failing.Store(on) }

// SetDelay holds every answer for d, so that requests overlap.
func (p *PCCS) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }
