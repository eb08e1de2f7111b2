// Package servertest starts real `ppml serve` instances for tests: the same
// server code, HTTPS on a loopback port, on SQLite or on a throwaway
// PostgreSQL database (PPML_TEST_POSTGRES, set by scripts/test.sh).
package servertest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server"
)

// Stores lists the store kinds every integration test runs on. Both always:
// without PPML_TEST_POSTGRES the test fails rather than dropping PostgreSQL.
func Stores(t *testing.T) []string {
	t.Helper()
	postgresBase(t)
	return []string{"sqlite", "postgres"}
}

// postgresBase is PPML_TEST_POSTGRES, the URL of a PostgreSQL server the
// tests may create databases on; unset, the test fails.
func postgresBase(t testing.TB) string {
	t.Helper()
	base := os.Getenv("PPML_TEST_POSTGRES")
	if base == "" {
		t.Fatal("PPML_TEST_POSTGRES is unset: run the tests with scripts/test.sh, which starts PostgreSQL " +
			"(by hand: source scripts/postgres.sh)")
	}
	return base
}

// NewPostgresDB creates a fresh database and returns its URL; it is dropped
// when the test ends.
func NewPostgresDB(t testing.TB) string {
	t.Helper()
	base := postgresBase(t)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "ppml_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		admin.Close()
	})
	u, _ := url.Parse(base)
	u.Path = "/" + name
	return u.String()
}

// Clock is an adjustable clock for the server.
type Clock struct{ offset atomic.Int64 }

// Now returns the real time plus the offset.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// Set makes the clock read t now (and advance in real time from there).
func (c *Clock) Set(t time.Time) { c.offset.Store(int64(time.Until(t))) }

// Instance is a running server.
type Instance struct {
	URL        string
	CAFile     string
	AdminToken string
	DataDir    string
	DB         string
	Server     *server.Server
	Clock      *Clock
	cancel     context.CancelFunc
	done       chan error
}

// Options tweak the server configuration.
type Options struct {
	Store   string // sqlite (default) or postgres
	DataDir string // reuse a data dir (restart); default a new temp dir
	DB      string // reuse a database (restart)
	Modify  func(*server.Config)
	Clock   *Clock
}

// Start starts a server and stops it when the test ends.
func Start(t testing.TB, o Options) *Instance {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	if o.DB == "" && o.Store == "postgres" {
		o.DB = NewPostgresDB(t)
	}
	if o.Clock == nil {
		o.Clock = &Clock{}
	}
	cfg := server.Config{Addr: "127.0.0.1:0", DataDir: o.DataDir, DB: o.DB, Now: o.Clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	// Refused authentications are answered at once (the many tests of
	// wrong credentials would each wait); server TestBigDLTokenFlood
	// checks the delay.
	cfg.Limits.AuthFailureDelay = -1
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if o.Modify != nil {
		o.Modify(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("starting server: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inst := &Instance{Server: srv, DataDir: o.DataDir, DB: o.DB, Clock: o.Clock, CAFile: srv.CertPath, cancel: cancel, done: make(chan error, 1)}
	scheme := "https://"
	if cfg.InsecureHTTP {
		scheme = "http://"
	}
	inst.URL = scheme + l.Addr().String()
	if tok, err := os.ReadFile(filepath.Join(o.DataDir, "admin.token")); err == nil {
		inst.AdminToken = strings.TrimSpace(string(tok))
	}
	go func() { inst.done <- srv.Serve(ctx, l) }()
	t.Cleanup(inst.Stop)
	return inst
}

// Stop shuts the server down (idempotent).
func (i *Instance) Stop() {
	if i.cancel == nil {
		return
	}
	i.cancel()
	<-i.done
	i.Server.Close()
	i.cancel = nil
}

// Config returns a client configuration for this server.
func (i *Instance) Config() client.Config {
	return client.Config{URL: i.URL, CAFile: i.CAFile, AdminToken: i.AdminToken}
}

// Enroll creates an app and returns an eHSM client for it.
func (i *Instance) Enroll(t testing.TB) (*client.EHSM, client.Config) {
	t.Helper()
	e, err := client.NewEHSM(i.Config())
	if err != nil {
		t.Fatal(err)
	}
	appID, apiKey, err := e.Enroll(context.Background())
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	cfg := i.Config()
	cfg.AdminToken = ""
	cfg.AppID, cfg.APIKey = appID, apiKey
	app, err := client.NewEHSM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return app, cfg
}
