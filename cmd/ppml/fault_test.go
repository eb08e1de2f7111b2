package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server/servertest"
)

// replicaProc is one `ppml serve` process of the fault suite, on a fixed
// port so that a restarted replica keeps its URL.
type replicaProc struct {
	t       *testing.T
	name    string
	lastErr atomic.Value
	dir     string
	addr    string
	args    []string
	cmd     *exec.Cmd
	cfg     client.Config // admin
	shares  func() []client.Share
	started time.Time
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (r *replicaProc) start() {
	r.t.Helper()
	r.cmd = exec.Command(ppmlBin, append([]string{"serve", "--addr", r.addr, "--data-dir", r.dir}, r.args...)...)
	logf, err := os.OpenFile(filepath.Join(r.dir, "serve.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	cmd := r.cmd
	r.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	r.cfg.URL = "https://" + r.addr
	r.cfg.CAFile = filepath.Join(r.dir, "tls", "server.crt")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(r.cfg.CAFile); err == nil {
			if h, err := client.HTTPClient(r.cfg.CAFile, 0); err == nil {
				if resp, err := h.Get(r.cfg.URL + "/healthz"); err == nil {
					resp.Body.Close()
					break
				}
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(r.dir, "serve.log"))
			r.t.Fatalf("%s did not start:\n%s", r.name, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r.shares != nil {
		r.unseal(r.shares())
	}
}

func (r *replicaProc) unseal(shares []client.Share) {
	r.t.Helper()
	n, err := client.NewNative(r.cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, s := range shares[:3] {
		if _, _, err := n.Unseal(context.Background(), s); err != nil {
			r.t.Fatalf("unsealing %s: %v", r.name, err)
		}
	}
}

func (r *replicaProc) kill9() {
	r.cmd.Process.Signal(syscall.SIGKILL)
	r.cmd.Wait()
}

// faultStats counts the requests of the load during one fault.
type faultStats struct {
	ops, failed        atomic.Int64
	firstNs, lastNs    atomic.Int64
	name               string
	lastErr            atomic.Value
	startedAt, endedAt time.Time
}

func (s *faultStats) fail(err error) {
	s.lastErr.Store(err.Error())
	s.failed.Add(1)
	now := time.Now().UnixNano()
	s.firstNs.CompareAndSwap(0, now)
	s.lastNs.Store(now)
}

func (s *faultStats) String() string {
	window := time.Duration(0)
	if f := s.firstNs.Load(); f != 0 {
		window = time.Duration(s.lastNs.Load() - f)
	}
	return fmt.Sprintf("%-40s %6d requests, %4d failed, failures within %v (phase %v)", s.name, s.ops.Load(), s.failed.Load(),
		window.Round(time.Millisecond), s.endedAt.Sub(s.startedAt).Round(time.Millisecond))
}

// TestReplicasUnderFaults (issue 12): 3 replicas of `ppml serve` (Shamir
// root key, each unsealed separately) on a PostgreSQL of their own, under a
// load of CreateKey, GenerateDataKeyWithoutPlaintext, Decrypt and key
// rotations spread over the replicas, while the test kill -9s a replica and
// restarts it, restarts PostgreSQL in immediate mode, and rotates the root
// key on one replica while rekeying on another. Afterwards every
// acknowledged key and ciphertext works on every replica, and on a replica
// restarted and unsealed with the new shares.
func TestReplicasUnderFaults(t *testing.T) {
	pg := servertest.StartPostgres(t)
	base := t.TempDir()
	tokenFile := filepath.Join(base, "admin.token")
	tok := make([]byte, 24)
	rand.Read(tok)
	if err := os.WriteFile(tokenFile, []byte(base64.RawURLEncoding.EncodeToString(tok)), 0o600); err != nil {
		t.Fatal(err)
	}
	var sharesMu sync.Mutex
	var shares []client.Share
	currentShares := func() []client.Share { sharesMu.Lock(); defer sharesMu.Unlock(); return shares }
	reps := make([]*replicaProc, 3)
	for i := range reps {
		dir := filepath.Join(base, fmt.Sprintf("replica-%d", i+1))
		os.MkdirAll(dir, 0o700)
		reps[i] = &replicaProc{t: t, name: fmt.Sprintf("replica %d", i+1), dir: dir, addr: freeAddr(t),
			args: []string{"--db", pg.URL(), "--root-key-provider", "shamir", "--admin-token-file", tokenFile}}
		reps[i].cfg.AdminToken = base64.RawURLEncoding.EncodeToString(tok)
		reps[i].start()
	}
	ctx := context.Background()
	n0, _ := client.NewNative(reps[0].cfg)
	s, err := n0.InitRootKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	shares = s
	for _, r := range reps[1:] {
		r.unseal(shares)
	}
	for _, r := range reps {
		r.shares = currentShares
	}
	e0, _ := client.NewEHSM(reps[0].cfg)
	appID, apiKey, err := e0.Enroll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	apps := make([]*client.EHSM, 3)
	natives := make([]*client.Native, 3)
	for i, r := range reps {
		cfg := r.cfg
		cfg.AdminToken, cfg.AppID, cfg.APIKey = "", appID, apiKey
		apps[i], _ = client.NewEHSM(cfg)
		natives[i], _ = client.NewNative(cfg)
	}

	type ack struct{ keyID, ct string }
	var (
		mu    sync.Mutex
		keys  []string
		acked []ack
	)
	phases := []*faultStats{{name: "(a) kill -9 replica 2, restart, unseal"}, {name: "(b) PostgreSQL restart -m immediate"},
		{name: "(c) root rotate on 1, rekey on 3"}}
	var phase atomic.Pointer[faultStats]
	steady := &faultStats{name: "no fault"}
	phase.Store(steady)
	const aad = "ZmF1bHQ=" // "fault"
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; loadCtx.Err() == nil; i++ {
				r := (w + i) % 3
				st := phase.Load()
				st.ops.Add(1)
				var err error
				mu.Lock()
				nk, na := len(keys), len(acked)
				var keyID string
				var old ack
				if nk > 0 {
					keyID = keys[(w*7+i)%nk]
				}
				if na > 0 {
					old = acked[(w*13+i)%na]
				}
				mu.Unlock()
				switch {
				case nk == 0 || i%6 == 0:
					var id string
					if id, err = apps[r].CreateKey(loadCtx, "EH_AES_GCM_256"); err == nil {
						mu.Lock()
						keys = append(keys, id)
						mu.Unlock()
					}
				case i%6 == 1 && na > 0:
					_, err = apps[r].Decrypt(loadCtx, old.keyID, old.ct, aad)
				case i%23 == 5:
					_, err = natives[r].KeyAction(loadCtx, keyID, "rotate", nil)
				default:
					var ct string
					if ct, err = apps[r].GenerateDataKeyWithoutPlaintext(loadCtx, keyID, 32, aad); err == nil {
						mu.Lock()
						acked = append(acked, ack{keyID, ct})
						mu.Unlock()
					}
				}
				if err != nil && loadCtx.Err() == nil {
					st.fail(err)
				}
				time.Sleep(15 * time.Millisecond)
			}
		}(w)
	}
	during := func(st *faultStats, fault func()) {
		st.startedAt = time.Now()
		phase.Store(st)
		fault()
		// The fault lasts until the load has run 1.5 s without a failure (a
		// connection the database dropped fails once, when next used), at
		// most 20 s.
		time.Sleep(1500 * time.Millisecond)
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); {
			time.Sleep(250 * time.Millisecond)
			if last := st.lastNs.Load(); time.Since(time.Unix(0, last)) > 1500*time.Millisecond {
				break
			}
		}
		st.endedAt = time.Now()
		phase.Store(steady)
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond)
	during(phases[0], func() {
		reps[1].kill9()
		time.Sleep(500 * time.Millisecond)
		reps[1].start()
	})
	during(phases[1], pg.RestartImmediate)
	var newShares []client.Share
	during(phases[2], func() {
		var fwg sync.WaitGroup
		fwg.Add(2)
		go func() {
			defer fwg.Done()
			for i := 0; i < 5; i++ {
				if _, err := n0.RotateRootKey(ctx); err != nil {
					t.Errorf("root rotation on replica 1: %v", err)
				}
			}
		}()
		go func() {
			defer fwg.Done()
			n2, _ := client.NewNative(reps[2].cfg)
			id, s, err := n2.PrepareRekey(ctx)
			if err == nil {
				err = n2.CommitRekey(ctx, id)
			}
			if err != nil {
				t.Errorf("rekey on replica 3: %v", err)
			}
			newShares = s
		}()
		fwg.Wait()
	})
	stopLoad()
	wg.Wait()
	for _, st := range append([]*faultStats{steady}, phases...) {
		t.Log(st)
	}
	if n := steady.failed.Load(); n != 0 {
		// A pooled connection PostgreSQL dropped fails the request that next
		// uses it, which can be after the fault's quiet period: reported,
		// retryable (503), never an acknowledged write.
		t.Logf("%d requests failed outside the faults' windows (late effects), the last: %v", n, steady.lastErr.Load())
	}
	if len(keys) < 10 || len(acked) < 50 {
		t.Fatalf("too little acknowledged load: %d keys, %d data keys", len(keys), len(acked))
	}

	// Replica 2 restarts once more and unseals with the new shares only.
	sharesMu.Lock()
	shares = newShares
	sharesMu.Unlock()
	reps[1].kill9()
	reps[1].start()

	verify := func(r int) {
		var vwg sync.WaitGroup
		work := make(chan func() error)
		var lost atomic.Int64
		for g := 0; g < 6; g++ {
			vwg.Add(1)
			go func() {
				defer vwg.Done()
				for f := range work {
					if err := f(); err != nil {
						if lost.Add(1) <= 3 {
							t.Errorf("%s: %v", reps[r].name, err)
						}
					}
				}
			}()
		}
		for _, id := range keys {
			work <- func() error {
				_, err := apps[r].GenerateDataKeyWithoutPlaintext(ctx, id, 16, aad)
				if err != nil {
					return fmt.Errorf("acknowledged key %s unusable: %w", id, err)
				}
				return nil
			}
		}
		for _, a := range acked {
			work <- func() error {
				_, err := apps[r].Decrypt(ctx, a.keyID, a.ct, aad)
				if err != nil {
					return fmt.Errorf("acknowledged ciphertext of key %s does not decrypt: %w", a.keyID, err)
				}
				return nil
			}
		}
		close(work)
		vwg.Wait()
		if lost.Load() > 0 {
			t.Fatalf("%s: %d acknowledged keys or ciphertexts lost", reps[r].name, lost.Load())
		}
	}
	for r := range reps {
		verify(r)
	}
	st, _ := natives[1].Status(ctx)
	t.Logf("all %d acknowledged keys and %d acknowledged ciphertexts work on all 3 replicas (root key term now %v)", len(keys), len(acked), st["term"])
}
