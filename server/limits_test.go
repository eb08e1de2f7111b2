package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/internal/limit"
	"github.com/ppml-project/ppml/quote/quotetest"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
)

type answer struct {
	status     int
	retryAfter string
	body       string
}

func send(h *http.Client, req *http.Request) answer {
	resp, err := h.Do(req)
	if err != nil {
		return answer{body: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(b)}
}

// One app flooding RSA-4096 generation over the native and eHSM APIs holds
// its share of the RSA slots, one; its excess is refused with 429 and
// Retry-After once the wait is over, and another app's RSA key is made
// meanwhile.
func TestRSAGenerationPerAppLimit(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) {
		c.Limits.RSA = limit.Config{Global: 2, PerCaller: 1, Wait: 300 * time.Millisecond}
	}})
	_, cfgA := inst.Enroll(t)
	_, cfgB := inst.Enroll(t)
	h, err := client.HTTPClient(inst.CAFile, 0)
	if err != nil {
		t.Fatal(err)
	}
	native := func(cfg client.Config, spec string) *http.Request {
		req, _ := http.NewRequest("POST", inst.URL+"/v1/keys", strings.NewReader(`{"keyspec":"`+spec+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(cfg.AppID, cfg.APIKey)
		return req
	}
	rawA := newRaw(t, inst, cfgA)
	var ehsmBodies [][]byte
	for range 3 {
		ehsmBodies = append(ehsmBodies, rawA.signed(`{"keyspec":"EH_RSA_4096","origin":"EH_INTERNAL_KEY"}`, time.Now(), nonce()))
	}
	const flood = 6
	answers := make(chan answer, flood)
	var wg sync.WaitGroup
	for i := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				answers <- send(h, native(cfgA, "EH_RSA_4096"))
				return
			}
			req, _ := http.NewRequest("POST", inst.URL+"/ehsm?Action=CreateKey", bytes.NewReader(ehsmBodies[i/2]))
			req.Header.Set("Content-Type", "application/json")
			answers <- send(h, req)
		}()
	}
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	b := send(h, native(cfgB, "EH_RSA_3072"))
	if b.status != 200 {
		t.Fatalf("app B during app A's flood: %d %s", b.status, b.body)
	}
	t.Logf("app B's RSA-3072 during the flood: %s", time.Since(start))
	wg.Wait()
	close(answers)
	made, refused := 0, 0
	for a := range answers {
		var env struct {
			Code int `json:"code"`
		}
		isEHSM := json.Unmarshal([]byte(a.body), &env) == nil && env.Code != 0
		switch {
		case a.status == 200 && (!isEHSM || env.Code == 200):
			made++
		case a.status == http.StatusTooManyRequests && a.retryAfter != "" && strings.Contains(a.body, "too_many_in_flight") || (isEHSM && env.Code == 429 && a.status == 429):
			if s, err := strconv.Atoi(a.retryAfter); err != nil || s < 1 {
				t.Fatalf("Retry-After %q", a.retryAfter)
			}
			refused++
		default:
			t.Fatalf("app A's flood: unexpected answer %d %q %s", a.status, a.retryAfter, a.body)
		}
	}
	if made < 1 || refused < flood-2 {
		t.Fatalf("app A's %d concurrent RSA-4096 requests: %d made, %d refused with 429; want 1 or 2 made, the rest refused", flood, made, refused)
	}
}

// A flood of made-up BigDL tokens for one user name gets 429 (its share of
// the argon2id slots) or 503 busy with Retry-After, never a 500, and each
// refused token is answered only after the auth failure delay; a user
// whose token was verified before is served at once meanwhile.
func TestBigDLTokenFlood(t *testing.T) {
	const delay = 300 * time.Millisecond
	inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) {
		c.Limits.Argon = limit.Config{Global: 1, PerCaller: 1, Wait: 100 * time.Millisecond, PerCallerRate: 1000}
		c.Limits.AuthFailureDelay = delay
	}})
	h0, _ := client.HTTPClient(inst.CAFile, 0)
	b := &bigdl{t: t, http: h0, base: inst.URL, tok: inst.AdminToken}
	if code, body := b.do("POST", "/user/alice?token=alice-token-1", true); code != 200 {
		t.Fatalf("create user: %d %s", code, body)
	}
	if code, body := b.do("POST", "/primaryKey/pk1?user=alice&token=alice-token-1", false); code != 200 {
		t.Fatalf("primary key: %d %s", code, body)
	}
	start := time.Now()
	if code, _ := b.do("POST", "/primaryKey/pk2?user=alice&token=wrong-token", false); code != 401 || time.Since(start) < delay {
		t.Fatalf("a wrong token: %d after %s, want 401 after at least %s", code, time.Since(start), delay)
	}
	h, _ := client.HTTPClient(inst.CAFile, 0)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				req, _ := http.NewRequestWithContext(ctx, "POST", fmt.Sprintf("%s/primaryKey/x?user=mallory&token=guess-%d-%d", inst.URL, i, n), nil)
				a := send(h, req)
				if ctx.Err() != nil {
					return
				}
				if (a.status == 429 || a.status == 503) && a.retryAfter == "" {
					a.status = -a.status // counted as wrong
				}
				mu.Lock()
				statuses[a.status]++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	for range 5 {
		start := time.Now()
		if code, body := b.do("POST", "/dataKey/dk-"+strconv.Itoa(int(start.UnixNano()%1e6))+"?user=alice&token=alice-token-1&primaryKeyName=pk1", false); code != 200 {
			t.Fatalf("alice during the flood: %d %s", code, body)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("alice during the flood took %s", d)
		}
	}
	stop()
	wg.Wait()
	if statuses[429] == 0 {
		t.Fatalf("flood answers: %v; want 429s with Retry-After", statuses)
	}
	for st := range statuses {
		if st != 401 && st != 429 && st != 503 {
			t.Fatalf("flood answers: %v; want only 401, 429 and 503 (with Retry-After)", statuses)
		}
	}
	t.Logf("flood answers: %v", statuses)
}

// A forged quote (its own signature fails) is a forged credential: its
// refusal waits the auth failure delay; a genuine quote refused for
// another reason (here: no collateral) is answered at once.
func TestForgedQuoteDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) { c.Limits.AuthFailureDelay = delay }})
	_, cfg := inst.Enroll(t)
	h, _ := client.HTTPClient(inst.CAFile, 0)
	genuine := quotetest.Read(t, "sgx-phala", "quote.bin")
	forgedQuote := bytes.Clone(genuine)
	forgedQuote[48+64] ^= 1
	verifyQuote := func(q []byte) (answer, time.Duration) {
		body, _ := json.Marshal(map[string]string{"appID": cfg.AppID, "apiKey": cfg.APIKey, "quote": base64.StdEncoding.EncodeToString(q)})
		req, _ := http.NewRequest("POST", inst.URL+"/verifyQuote", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		a := send(h, req)
		return a, time.Since(start)
	}
	if a, d := verifyQuote(forgedQuote); !strings.Contains(a.body, "quote_signature") || d < delay {
		t.Fatalf("forged quote: %d %s after %s, want quote_signature after at least %s", a.status, a.body, d, delay)
	}
	if a, d := verifyQuote(genuine); !strings.Contains(a.body, "no_collateral") || d >= delay {
		t.Fatalf("genuine quote without collateral: %d %s after %s, want no_collateral at once", a.status, a.body, d)
	}
}

// A client that hangs up during the auth failure delay ends the wait: the
// refusal is audited at once, not after the delay (a guesser that gives up
// holds no server goroutine for the rest of it).
func TestAuthFailureDelayEndsWithTheClient(t *testing.T) {
	const delay = 20 * time.Second
	inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) { c.Limits.AuthFailureDelay = delay }})
	_, cfg := inst.Enroll(t)
	cfg.APIKey = "a-wrong-key"
	n, _ := client.NewNative(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := n.ListKeys(ctx); err == nil {
		t.Fatal("a wrong API key listed keys")
	}
	for {
		b, _ := os.ReadFile(filepath.Join(inst.DataDir, "audit.log"))
		if strings.Contains(string(b), `"bad_api_key"`) {
			break
		}
		if time.Since(start) > delay/2 {
			t.Fatalf("the refusal of a client that hung up after 200ms is not audited after %s: the server is still waiting out the %s delay", time.Since(start), delay)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("audited %s after the request", time.Since(start).Round(time.Millisecond))
}

// /metrics shows the bounded slow work in progress: an RSA-4096 generation
// holds one rsa slot while it runs and gives it back when done.
func TestInFlightMetric(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{})
	_, cfg := inst.Enroll(t)
	n, _ := client.NewNative(cfg)
	h, _ := client.HTTPClient(inst.CAFile, 0)
	scrape := func() string {
		resp, err := h.Get(inst.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for _, want := range []string{`ppml_limit_in_flight{limit="argon2id"} 0`, `ppml_limit_in_flight{limit="rsa"} 0`, `ppml_limit_in_flight{limit="pccs"} 0`} {
		if m := scrape(); !strings.Contains(m, want) {
			t.Fatalf("an idle server's metrics lack %s", want)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := n.CreateKey(context.Background(), client.KeyOptions{Spec: "EH_RSA_4096"})
		done <- err
	}()
	seen := false
	for !seen {
		select {
		case err := <-done:
			t.Fatalf("the RSA-4096 generation ended (%v) before /metrics showed it in flight", err)
		default:
		}
		seen = strings.Contains(scrape(), `ppml_limit_in_flight{limit="rsa"} 1`)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m := scrape(); !strings.Contains(m, `ppml_limit_in_flight{limit="rsa"} 0`) {
		t.Fatal("the rsa slot is still counted after the generation ended")
	}
}
