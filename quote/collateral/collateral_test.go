package collateral

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ppml-project/ppml/quote/pck"

	"github.com/ppml-project/ppml/quote/quotetest"
)

// vecDir is the repository's DCAP vector set (quote/testdata/dcap).
var vecDir = quotetest.Dir()

func load(t testing.TB, name string) *Collateral {
	t.Helper()
	c, err := LoadFile(filepath.Join(vecDir, name, "collateral.json"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseVectors(t *testing.T) {
	for _, n := range []string{"sgx-phala", "tdx-v4-oasis", "tdx-v4-oasis-out-of-date"} {
		c := load(t, n)
		if _, err := ParseTCBInfo([]byte(c.TCBInfo)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
		if _, err := ParseQEIdentity([]byte(c.QEIdentity)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	c := load(t, "sgx-phala")
	exp, err := Expiry(c)
	if err != nil || exp.Format(time.RFC3339) != "2025-07-19T10:01:18Z" {
		t.Fatalf("expiry %v %v", exp, err)
	}
}

func TestParseStrict(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(vecDir, "sgx-phala", "collateral.json"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ in, want string }{
		{`{"tcb_infoo":""}`, `unknown field "tcb_infoo"`},
		{`{}`, "field tcb_info_issuer_chain is missing"},
		{strings.Replace(string(good), `"tcb_info_signature": "9a`, `"tcb_info_signature": "zz`, 1), "tcb_info_signature is not hex"},
		{partialCRL(t, good), "must be all present or all empty"},
		{`[1]`, "collateral:"},
		{string(good) + "{}", "trailing data"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
	if _, err := Parse(good); err != nil {
		t.Fatal(err)
	}
}

func partialCRL(t *testing.T, good []byte) string {
	c, err := Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	c.PCKCRL = ""
	b, _ := c.Marshal()
	return string(b)
}

func writeCol(t *testing.T, dir, name string, c *Collateral) {
	b, _ := c.Marshal()
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDir(t *testing.T) {
	dir := t.TempDir()
	writeCol(t, dir, "a.json", load(t, "sgx-phala"))
	writeCol(t, dir, "b.json", load(t, "tdx-v4-oasis"))
	writeCol(t, dir, "c.json", load(t, "tdx-v4-oasis-out-of-date"))
	os.WriteFile(filepath.Join(dir, "README.txt"), []byte("ignored"), 0o644)
	d, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, path, err := d.Lookup("sgx", "00A067110000", pck.CAProcessor)
	if err != nil || !strings.HasSuffix(path, "a.json") || !c.HasCRLs() {
		t.Fatalf("sgx lookup: %v %s", err, path)
	}
	if _, path, err = d.Lookup("tdx", "c0806f000000", pck.CAPlatform); err != nil || !strings.HasSuffix(path, "b.json") {
		t.Fatalf("tdx lookup: %v %s", err, path)
	}
	if _, path, err = d.Lookup("tdx", "50806f000000", pck.CAPlatform); err != nil || !strings.HasSuffix(path, "c.json") {
		t.Fatalf("tdx lookup: %v %s", err, path)
	}
	if _, _, err = d.Lookup("sgx", "00a067110000", pck.CAPlatform); err == nil || !strings.Contains(err.Error(), "sgx/00a067110000/processor") {
		t.Fatalf("wrong CA found: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"x":1}`), 0o644)
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Fatalf("bad file not reported: %v", err)
	}
}

// pcsServer serves collateral over the PCS v4 paths and headers.
func pcsServer(t *testing.T, c *Collateral, tee, fmspc, ca string, hits *atomic.Int32) *httptest.Server {
	rootCRL, _ := hex.DecodeString(c.RootCACRL)
	pckCRL, _ := hex.DecodeString(c.PCKCRL)
	mux := http.NewServeMux()
	mux.HandleFunc("/sgx/certification/v4/pckcrl", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Query().Get("ca") != ca || r.URL.Query().Get("encoding") != "der" {
			http.Error(w, "bad ca", 400)
			return
		}
		w.Header().Set(HeaderPCKCRLIssuerChain, url.PathEscape(c.PCKCRLIssuerChain))
		w.Write(pckCRL)
	})
	mux.HandleFunc("/sgx/certification/v4/rootcacrl", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(hex.EncodeToString(rootCRL))) // some PCCS versions return hex text
	})
	mux.HandleFunc("/"+tee+"/certification/v4/tcb", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if !strings.EqualFold(r.URL.Query().Get("fmspc"), fmspc) {
			http.Error(w, "no such fmspc", 404)
			return
		}
		w.Header().Set(HeaderTCBInfoIssuerChain, url.PathEscape(c.TCBInfoIssuerChain))
		w.Write([]byte(`{"tcbInfo":` + c.TCBInfo + `,"signature":"` + c.TCBInfoSignature + `"}`))
	})
	mux.HandleFunc("/"+tee+"/certification/v4/qe/identity", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set(HeaderQEIdentityIssuer, url.PathEscape(c.QEIdentityIssuerChain))
		w.Write([]byte(`{"enclaveIdentity":` + c.QEIdentity + `,"signature":"` + c.QEIdentitySignature + `"}`))
	})
	return httptest.NewServer(mux)
}

func TestFetcher(t *testing.T) {
	want := load(t, "sgx-phala")
	var hits atomic.Int32
	srv := pcsServer(t, want, "sgx", "00a067110000", pck.CAProcessor, &hits)
	now := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	cacheDir := t.TempDir()
	f := &Fetcher{BaseURL: srv.URL + "/sgx/certification/v4/", Client: srv.Client(), Now: func() time.Time { return now }, CacheDir: cacheDir}
	got, err := f.Get(context.Background(), "sgx", "00A067110000", pck.CAProcessor)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *want {
		t.Fatal("fetched collateral differs from the served one")
	}
	n := hits.Load()
	if _, err := f.Get(context.Background(), "sgx", "00a067110000", pck.CAProcessor); err != nil || hits.Load() != n {
		t.Fatalf("cache not used: %v, %d requests", err, hits.Load()-n)
	}
	// The cache directory is readable as an offline collateral dir.
	d, err := LoadDir(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	if c, _, err := d.Lookup("sgx", "00a067110000", pck.CAProcessor); err != nil || *c != *want {
		t.Fatalf("cache dir: %v", err)
	}
	// Past the expiry the fetcher refreshes; with the server down it
	// returns the cached copy with a StaleError.
	now = time.Date(2025, 7, 19, 10, 0, 0, 0, time.UTC)
	srv.Close()
	got, err = f.Get(context.Background(), "sgx", "00a067110000", pck.CAProcessor)
	var se *StaleError
	if !errors.As(err, &se) || got == nil || se.Expires.Format(time.RFC3339) != "2025-07-19T10:01:18Z" {
		t.Fatalf("stale: %v %v", err, got != nil)
	}
	// Unknown FMSPC: a precise error, nothing cached.
	var hits2 atomic.Int32
	srv2 := pcsServer(t, want, "sgx", "00a067110000", pck.CAProcessor, &hits2)
	defer srv2.Close()
	f2 := &Fetcher{BaseURL: srv2.URL, Client: srv2.Client()}
	if _, err := f2.Get(context.Background(), "sgx", "00a067110001", pck.CAProcessor); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("unknown fmspc: %v", err)
	}
	if _, err := f2.Get(context.Background(), "sgx", "xyz", pck.CAProcessor); err == nil {
		t.Fatal("bad fmspc accepted")
	}
}

func FuzzParseCollateral(f *testing.F) {
	for _, n := range []string{"sgx-phala", "tdx-v4-oasis", "tdx-v4-oasis-out-of-date"} {
		f.Add(quotetest.Read(f, n, "collateral.json"))
	}
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			if c != nil {
				t.Fatal("collateral returned with an error")
			}
			return
		}
		// What parses is valid, and survives its own encoding unchanged.
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed collateral does not validate: %v", err)
		}
		if (c.PCKCRL == "") != (c.RootCACRL == "") || (c.PCKCRL == "") != (c.PCKCRLIssuerChain == "") {
			t.Fatal("partial CRL set accepted")
		}
		enc, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		c2, err := Parse(enc)
		if err != nil || *c2 != *c || c2.Hash() != c.Hash() {
			t.Fatalf("collateral changed through Marshal/Parse: %v", err)
		}
		KeyOf(c)
		Expiry(c)
	})
}

func FuzzParseTCBInfo(f *testing.F) {
	for _, n := range []string{"sgx-phala", "tdx-v4-oasis"} {
		c := load(f, n)
		f.Add([]byte(c.TCBInfo))
		f.Add([]byte(c.QEIdentity))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// What parses keeps the promises the verifier relies on.
		if ti, err := ParseTCBInfo(b); err == nil {
			if len(ti.FMSPC) != 6 || len(ti.PCEID) != 2 || len(ti.TCBLevels) == 0 || ti.IssueDate.IsZero() || ti.NextUpdate.IsZero() {
				t.Fatalf("tcb_info accepted without fmspc/pceId/levels/dates: %+v", ti)
			}
			for _, l := range ti.TCBLevels {
				if !validPlatformStatus[l.TCBStatus] || len(l.TCB.SGXComponents) != 16 || (l.TCB.TDXComponents != nil && len(l.TCB.TDXComponents) != 16) {
					t.Fatalf("tcb_info level accepted: %+v", l)
				}
			}
		} else if ti != nil {
			t.Fatal("tcb_info returned with an error")
		}
		if qe, err := ParseQEIdentity(b); err == nil {
			if len(qe.MRSigner) != 32 || len(qe.MiscSelect) != 4 || len(qe.MiscSelectMask) != 4 || len(qe.Attributes) != 16 || len(qe.AttributesMask) != 16 || len(qe.TCBLevels) == 0 {
				t.Fatalf("qe_identity accepted with wrong field sizes: %+v", qe)
			}
			for _, l := range qe.TCBLevels {
				if !validISVStatus[l.TCBStatus] {
					t.Fatalf("qe_identity level status %q accepted", l.TCBStatus)
				}
			}
		} else if qe != nil {
			t.Fatal("qe_identity returned with an error")
		}
	})
}
