package source_test

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ppml-project/ppml/internal/limit"
	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/collateral"
	"github.com/ppml-project/ppml/quote/quotetest"
	"github.com/ppml-project/ppml/quote/source"
	"github.com/ppml-project/ppml/quote/verify"
)

// pccsSource is a Source for the Intel root whose only collateral source is
// a Fetcher of the PCCS, with the clock at the vector's time.
func pccsSource(t *testing.T, p *quotetest.PCCS, now func() time.Time, lim *limit.Limiter) *source.Source {
	t.Helper()
	f := &collateral.Fetcher{BaseURL: p.URL, Client: p.Client(), Now: now, NegativeTTL: time.Minute, Limit: lim}
	src, err := source.New(source.Config{Collateral: &source.Collateral{Sources: []source.Named{{Name: "--pccs-url", Getter: f}}}, RefuseSimulated: true, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func parse(t *testing.T, raw []byte) *abi.Quote {
	t.Helper()
	q, err := abi.ParseQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// forgeFMSPC returns the quote with its PCK leaf certificate's FMSPC
// replaced (so the leaf's signature no longer verifies), as an attacker
// sending made-up platforms would.
func forgeFMSPC(t *testing.T, raw []byte, fmspc []byte) []byte {
	t.Helper()
	q := parse(t, raw)
	blk, _ := pem.Decode(q.PCKChainPEM)
	oid := []byte{0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01, 0x04, 0x04, 0x06}
	i := bytes.Index(blk.Bytes, oid)
	if i < 0 {
		t.Fatal("no FMSPC in the PCK leaf")
	}
	der := bytes.Clone(blk.Bytes)
	copy(der[i+len(oid):], fmspc)
	oldPEM, newPEM := pem.EncodeToMemory(blk), pem.EncodeToMemory(&pem.Block{Type: blk.Type, Bytes: der})
	if !bytes.Contains(raw, oldPEM) || len(oldPEM) != len(newPEM) {
		t.Fatal("the leaf's PEM is not laid out as pem.EncodeToMemory does")
	}
	forged := bytes.Replace(raw, oldPEM, newPEM, 1)
	v, _ := verify.New(verify.Options{Now: time.Now})
	if c, err := v.Chain(parse(t, forged).PCKChainPEM); err != nil || c.FMSPC == "00a067110000" {
		t.Fatalf("forged chain: %v %+v", err, c)
	}
	return forged
}

// The PCCS is asked only for quotes whose own chain and signatures hold: a
// forged quote or PCK chain (made-up FMSPC) causes no fetch; concurrent
// identical requests share one fetch; a failed fetch is remembered for the
// negative TTL, then tried again.
func TestPCCSFetchesOnlyForGenuineQuotes(t *testing.T) {
	vec := quotetest.Load(t, "sgx-phala")
	ctx := context.Background()
	var clock atomic.Int64
	clock.Store(vec.At.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }

	p := quotetest.NewPCCS(t, "sgx-phala")
	src := pccsSource(t, p, now, nil)
	badSig := bytes.Clone(vec.Quote)
	badSig[48+64] ^= 1 // a byte of the report body: the quote signature fails
	for name, raw := range map[string][]byte{
		"quote signature":     badSig,
		"PCK chain (FMSPC 1)": forgeFMSPC(t, vec.Quote, []byte{1, 2, 3, 4, 5, 6}),
		"PCK chain (FMSPC 2)": forgeFMSPC(t, vec.Quote, []byte{0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa}),
	} {
		res, err := src.Verify(ctx, parse(t, raw))
		if err == nil || res.Verified {
			t.Fatalf("forged %s verified", name)
		}
		if p.Requests() != 0 {
			t.Fatalf("forged %s (%v): %d PCCS requests, want none", name, err, p.Requests())
		}
	}

	p.SetDelay(200 * time.Millisecond) // the requests overlap
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := src.Verify(ctx, parse(t, vec.Quote))
			if err == nil && !res.Verified {
				err = errors.New("not verified")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("genuine quote: %v", err)
		}
	}
	if p.Fetches() != 1 {
		t.Fatalf("16 concurrent identical requests: %d fetches, want 1", p.Fetches())
	}

	// A failing PCCS is asked once per negative TTL, not once per quote.
	p2 := quotetest.NewPCCS(t, "sgx-phala")
	p2.SetFailing(true)
	src2 := pccsSource(t, p2, now, nil)
	for i := range 5 {
		if _, err := src2.Verify(ctx, parse(t, vec.Quote)); err == nil {
			t.Fatalf("attempt %d verified with a failing PCCS", i)
		}
	}
	if n := p2.Requests(); n != 1 {
		t.Fatalf("5 quotes with a failing PCCS: %d requests, want 1 (the failure remembered)", n)
	}
	p2.SetFailing(false)
	clock.Add(int64(30 * time.Second))
	if _, err := src2.Verify(ctx, parse(t, vec.Quote)); err == nil || p2.Requests() != 1 {
		t.Fatalf("within the negative TTL: %v, %d requests", err, p2.Requests())
	}
	clock.Add(int64(31 * time.Second))
	if res, err := src2.Verify(ctx, parse(t, vec.Quote)); err != nil || !res.Verified || p2.Fetches() != 1 {
		t.Fatalf("after the negative TTL: %v, %d fetches", err, p2.Fetches())
	}
}

// A fetch that gets no slot within the limit's wait is refused with a
// retryable error (not no_collateral), and is not remembered as failed.
func TestPCCSFetchLimit(t *testing.T) {
	vec := quotetest.Load(t, "sgx-phala")
	now := func() time.Time { return vec.At }
	p := quotetest.NewPCCS(t, "sgx-phala")
	lim := limit.New("PCCS fetches", limit.Config{Global: 1, Wait: 50 * time.Millisecond})
	hold, err := lim.Acquire(context.Background(), "other")
	if err != nil {
		t.Fatal(err)
	}
	src := pccsSource(t, p, now, lim)
	_, err = src.Verify(limit.WithCaller(context.Background(), "app-1"), parse(t, vec.Quote))
	if !source.Retryable(err) || p.Requests() != 0 {
		t.Fatalf("with the only slot taken: %v (retryable %v), %d requests", err, source.Retryable(err), p.Requests())
	}
	hold()
	if res, err := src.Verify(context.Background(), parse(t, vec.Quote)); err != nil || !res.Verified {
		t.Fatalf("with a free slot: %v", err)
	}
}
