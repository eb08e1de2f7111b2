package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/internal/loadgen"
	"github.com/ppml-project/ppml/quote/abi"
)

// Flood times authenticated requests (eHSM Decrypt, BigDL KMS GET
// /dataKey with a genuine token) without and then with a flood of
// strangers' requests, of the Kinds:
//
//	tokens         BigDL requests with tokens made up for random user names
//	               (unknown users: the server imitates the hash's time)
//	user-tokens    BigDL requests with made-up tokens for the timed user
//	               (each costs a real argon2id hash, if it gets a slot)
//	quotes         BigDL AS /verifyQuote of a forged quote (Quote with a
//	               random FMSPC in its PCK certificate) with a made-up app id
//	tenant-quotes  the same forged quotes from an enrolled app, whose chain
//	               must fail before any PCCS fetch
//
// The report compares the p99s.
type Flood struct {
	// Client reaches the server, with AdminToken (apps and the BigDL user
	// are created for the run).
	Client      client.Config
	Concurrency int           // of the timed, authenticated requests (per operation)
	Flooders    int           // goroutines sending the flood
	Duration    time.Duration // of each measurement
	Quote       []byte        // a genuine quote to forge from (quotes, tenant-quotes)
	Kinds       []string      // what the flood sends, in turn
}

// FloodKinds are the kinds of flood requests.
var FloodKinds = []string{"tokens", "user-tokens", "quotes", "tenant-quotes"}

// FloodReport holds the timings without and with the flood.
type FloodReport struct {
	Baseline, Flooded []loadgen.Result
	// FloodAnswers counts the flood's answers by HTTP status (0: no answer).
	FloodAnswers map[int]int
	FloodRate    float64 // flood requests answered per second
	Kinds        []string
	Concurrency  int
	Flooders     int
	Duration     time.Duration
}

// Run sets up and measures.
func (f Flood) Run(ctx context.Context) (FloodReport, error) {
	rep := FloodReport{Concurrency: f.Concurrency, Flooders: f.Flooders, Duration: f.Duration, Kinds: f.Kinds}
	for _, k := range f.Kinds {
		if !slices.Contains(FloodKinds, k) {
			return rep, fmt.Errorf("flood kind %q: want one of %v", k, FloodKinds)
		}
		if strings.HasSuffix(k, "quotes") && f.Quote == nil {
			return rep, fmt.Errorf("flood kind %s needs a quote to forge from", k)
		}
	}
	if len(f.Kinds) == 0 {
		return rep, errors.New("no flood kind")
	}
	cfg := f.Client
	appCfg, err := enrollApp(ctx, cfg)
	if err != nil {
		return rep, err
	}
	e, keyID, ct, err := dataKeyFixture(ctx, appCfg)
	if err != nil {
		return rep, err
	}
	user := "bench-" + hex.EncodeToString(random(4))
	bd := &client.BigDLKMS{URL: cfg.URL, User: user, Token: hex.EncodeToString(random(16)), HTTP: cfg.HTTP}
	if err := bd.CreateUser(ctx, cfg.AdminToken); err != nil {
		return rep, err
	}
	if err := bd.CreatePrimaryKey(ctx, "pk"); err != nil {
		return rep, err
	}
	if err := bd.CreateDataKey(ctx, "pk", "dk"); err != nil {
		return rep, err
	}
	stranger, err := enrollApp(ctx, cfg)
	if err != nil {
		return rep, err
	}

	timed := func() []loadgen.Result {
		var out []loadgen.Result
		var mu sync.Mutex
		var wg sync.WaitGroup
		for name, op := range map[string]func(context.Context) error{
			"eHSM Decrypt": func(ctx context.Context) error {
				_, err := e.Decrypt(ctx, keyID, ct, "dGVzdA==")
				return err
			},
			"BigDL GET /dataKey": func(ctx context.Context) error {
				_, err := bd.DataKey(ctx, "pk", "dk")
				return err
			},
		} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := loadgen.Run(ctx, name, f.Concurrency, f.Duration, 0, op)
				mu.Lock()
				out = append(out, r)
				mu.Unlock()
			}()
		}
		wg.Wait()
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out
	}
	rep.Baseline = timed()

	fctx, stop := context.WithCancel(ctx)
	var (
		mu       sync.Mutex
		answers  = map[int]int{}
		answered atomic.Int64
		wg       sync.WaitGroup
	)
	for range f.Flooders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; fctx.Err() == nil; n++ {
				var req *http.Request
				switch f.Kinds[n%len(f.Kinds)] {
				case "tenant-quotes":
					req = forgedQuoteRequest(fctx, cfg.URL, stranger, f.Quote)
				case "quotes":
					req = forgedQuoteRequest(fctx, cfg.URL, client.Config{AppID: uuid.NewString(), APIKey: hex.EncodeToString(random(16))}, f.Quote)
				default:
					name := "nobody-" + hex.EncodeToString(random(4))
					if f.Kinds[n%len(f.Kinds)] == "user-tokens" {
						name = user
					}
					q := url.Values{"user": {name}, "token": {hex.EncodeToString(random(8))}}
					req, _ = http.NewRequestWithContext(fctx, http.MethodGet, cfg.URL+"/dataKey/dk?"+q.Encode()+"&primaryKeyName=pk", nil)
					req.Header.Set("Accept", "application/json")
				}
				status := 0
				if resp, err := cfg.HTTP.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				if fctx.Err() != nil {
					return
				}
				answered.Add(1)
				mu.Lock()
				answers[status]++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second) // the flood is in full swing before timing starts
	start := time.Now()
	n0 := answered.Load()
	rep.Flooded = timed()
	rep.FloodRate = float64(answered.Load()-n0) / time.Since(start).Seconds()
	stop()
	wg.Wait()
	rep.FloodAnswers = answers
	return rep, nil
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// forgedQuoteRequest is a BigDL AS /verifyQuote of quote with a random
// FMSPC in its PCK leaf certificate (whose signature then fails).
func forgedQuoteRequest(ctx context.Context, base string, app client.Config, quote []byte) *http.Request {
	forged, err := ForgeFMSPC(quote, random(6))
	if err != nil {
		forged = quote
	}
	body, _ := json.Marshal(map[string]string{"appID": app.AppID, "apiKey": app.APIKey, "quote": base64.StdEncoding.EncodeToString(forged)})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/verifyQuote", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req
}

// fmspcItem is the DER of the FMSPC item's OID and octet-string header in
// a PCK certificate's SGX extension.
var fmspcItem = []byte{0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01, 0x04, 0x04, 0x06}

// ForgeFMSPC returns quote with the FMSPC in its PCK leaf certificate
// replaced by fmspc (6 bytes): the chain still parses and names that
// platform, but the leaf's signature no longer verifies.
func ForgeFMSPC(quote, fmspc []byte) ([]byte, error) {
	q, err := abi.ParseQuote(quote)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(q.PCKChainPEM)
	if blk == nil {
		return nil, errors.New("the quote has no PEM PCK chain")
	}
	i := bytes.Index(blk.Bytes, fmspcItem)
	if i < 0 || len(fmspc) != 6 {
		return nil, errors.New("no FMSPC item in the PCK leaf certificate")
	}
	der := bytes.Clone(blk.Bytes)
	copy(der[i+len(fmspcItem):], fmspc)
	oldPEM, newPEM := pem.EncodeToMemory(blk), pem.EncodeToMemory(&pem.Block{Type: blk.Type, Bytes: der})
	if !bytes.Contains(quote, oldPEM) {
		return nil, errors.New("the PCK leaf's PEM is not laid out in 64-column lines")
	}
	return bytes.Replace(quote, oldPEM, newPEM, 1), nil
}

// WriteText prints both runs and the p99 ratios.
func (r FloodReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "client GOMAXPROCS=%d, %s per run, %d concurrent requests per operation, flood: %d goroutines sending %s\n", runtime.GOMAXPROCS(0), r.Duration, r.Concurrency, r.Flooders, strings.Join(r.Kinds, ", "))
	fmt.Fprintf(w, "%-20s %10s %10s %10s %10s %10s %10s %7s\n", "operation", "ops/s", "p50", "p99", "flood ops/s", "flood p50", "flood p99", "p99 x")
	for i, b := range r.Baseline {
		f := r.Flooded[i]
		fmt.Fprintf(w, "%-20s %10.0f %10s %10s %10.0f %10s %10s %7.2f\n", b.Name, b.OpsPerSec, b.P50.Round(10*time.Microsecond), b.P99.Round(10*time.Microsecond),
			f.OpsPerSec, f.P50.Round(10*time.Microsecond), f.P99.Round(10*time.Microsecond), float64(f.P99)/float64(b.P99))
		for _, res := range []loadgen.Result{b, f} {
			if res.FirstError != "" {
				fmt.Fprintf(w, "  %s: %d errors, first: %s\n", res.Name, res.Errors, res.FirstError)
			}
		}
	}
	fmt.Fprintf(w, "flood: %.0f requests/s answered, by status: %v\n", r.FloodRate, r.FloodAnswers)
}
