package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
	"github.com/ppml-project/ppml/wire/ehsmsig"
)

// TestCrashReplayChild is the server process of TestCrashMidBatchReplaysRefused
// (this test binary run again with PPML_CRASH_CHILD_DIR set); run directly it
// has nothing to do.
func TestCrashReplayChild(t *testing.T) {
	dir := os.Getenv("PPML_CRASH_CHILD_DIR")
	if dir == "" {
		return
	}
	cfg := server.Config{Addr: "127.0.0.1:0", DataDir: dir, DB: os.Getenv("PPML_CRASH_CHILD_DB"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cfg.Limits.AuthFailureDelay = -1 // the parent counts hundreds of refused replays
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "addr.tmp")
	if err := os.WriteFile(tmp, []byte(l.Addr().String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "addr")); err != nil {
		t.Fatal(err)
	}
	t.Fatal(srv.Serve(context.Background(), l)) // until killed
}

// crashChild runs the server of a data directory (and database) in a child
// process and returns its URL and a kill -9.
func crashChild(t *testing.T, dir, db string) (url string, kill func()) {
	t.Helper()
	os.Remove(filepath.Join(dir, "addr"))
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashReplayChild$")
	cmd.Env = append(os.Environ(), "PPML_CRASH_CHILD_DIR="+dir, "PPML_CRASH_CHILD_DB="+db)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill = func() { cmd.Process.Kill(); cmd.Wait() }
	t.Cleanup(kill)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "addr")); err == nil {
			return "https://" + string(b), kill
		}
		if time.Now().After(deadline) {
			t.Fatal("the server process did not start within 60 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signedBody is a signed eHSM request body with its own nonce.
func signedBody(t *testing.T, appID, apiKey, nonce string, payload map[string]any) []byte {
	raw, _ := json.Marshal(payload)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var decoded map[string]any
	if err := dec.Decode(&decoded); err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	sign := ehsmsig.Sign([]byte(apiKey), ehsmsig.Canonical(ehsmsig.Envelope(appID, nonce, ts, decoded)))
	body, _ := json.Marshal(map[string]any{"appid": appID, "nonce": nonce, "timestamp": ts, "payload": payload, "sign": sign})
	return body
}

// Replay records are group-committed: concurrent requests share one
// commit. The server is killed (SIGKILL) while requests are in flight;
// after the restart every request that had been answered successfully is
// replayed, and every one is refused: no request was acknowledged before
// its record was durable.
func TestCrashMidBatchReplaysRefused(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			dir := t.TempDir()
			db := ""
			if st == "postgres" {
				db = servertest.NewPostgresDB(t)
			}
			url, kill := crashChild(t, dir, db)
			tok, err := os.ReadFile(filepath.Join(dir, "admin.token"))
			if err != nil {
				t.Fatal(err)
			}
			caFile := filepath.Join(dir, "tls", "server.crt")
			cfg := client.Config{URL: url, CAFile: caFile, AdminToken: strings.TrimSpace(string(tok))}
			admin, err := client.NewEHSM(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if cfg.AppID, cfg.APIKey, err = admin.Enroll(ctx); err != nil {
				t.Fatal(err)
			}
			cfg.AdminToken = ""
			app, err := client.NewEHSM(cfg)
			if err != nil {
				t.Fatal(err)
			}
			keyID, err := app.CreateKey(ctx, "EH_AES_GCM_256")
			if err != nil {
				t.Fatal(err)
			}
			payload := map[string]any{"keyid": keyID, "keylen": 32, "aad": "dGVzdA=="}

			httpc, err := client.HTTPClient(caFile, 64)
			if err != nil {
				t.Fatal(err)
			}
			post := func(url string, body []byte) (int, error) {
				resp, err := httpc.Post(url+"/ehsm?Action=GenerateDataKeyWithoutPlaintext", "application/json", bytes.NewReader(body))
				if err != nil {
					return 0, err
				}
				defer resp.Body.Close()
				var e envelopeResp
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
					return 0, err
				}
				if e.Code != 200 && !strings.Contains(e.Message, "Timestamp can't be repeated") {
					return e.Code, fmt.Errorf("code %d: %s", e.Code, e.Message)
				}
				return e.Code, nil
			}

			var (
				mu    sync.Mutex
				acked [][]byte
				seq   atomic.Int64
				wg    sync.WaitGroup
			)
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						body := signedBody(t, cfg.AppID, cfg.APIKey, fmt.Sprintf("crash-%d", seq.Add(1)), payload)
						code, err := post(url, body)
						if err != nil {
							return // the server is gone
						}
						if code == 200 {
							mu.Lock()
							acked = append(acked, body)
							mu.Unlock()
						}
					}
				}()
			}
			for {
				time.Sleep(20 * time.Millisecond)
				mu.Lock()
				n := len(acked)
				mu.Unlock()
				if n >= 300 {
					break
				}
			}
			kill() // with 16 requests in flight
			wg.Wait()
			t.Logf("%d requests acknowledged before the kill, %d sent", len(acked), seq.Load())

			url, _ = crashChild(t, dir, db)
			httpc.CloseIdleConnections()
			for i, body := range acked {
				code, err := post(url, body)
				if err != nil {
					t.Fatalf("replay %d: %v", i, err)
				}
				if code == 200 {
					t.Fatalf("replay %d of %d acknowledged requests was accepted after the crash: its replay record was not durable", i, len(acked))
				}
			}
			// The restarted server does serve new requests.
			if code, err := post(url, signedBody(t, cfg.AppID, cfg.APIKey, "after-restart", payload)); err != nil || code != 200 {
				t.Fatalf("a new request after the restart: code %d, %v", code, err)
			}
		})
	}
}
