package server_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/kms"
	"github.com/ppml-project/ppml/server"
)

// The core opened offline (as ppml operator import-bigdl-kms does) is the
// server's: what it writes, with the server's flags, a later ppml serve on
// the same data directory reads; opening it creates nothing that serves.
func TestOpenCoreOffline(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	core, err := server.OpenCore(ctx, server.Config{DataDir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	c := kms.Caller{ID: kms.BigDLOwner("offline"), API: "operator"}
	if err := core.Service.CreateBigDLUser(ctx, c, "offline", "offline-token-1234"); err != nil {
		t.Fatal(err)
	}
	core.Close()
	for _, served := range []string{"tls", "sim"} {
		if _, err := os.Stat(filepath.Join(dir, served)); !os.IsNotExist(err) {
			t.Errorf("OpenCore created %s: %v", served, err)
		}
	}
	audit, _ := os.ReadFile(filepath.Join(dir, "audit.log"))
	if !strings.Contains(string(audit), "offline") {
		t.Errorf("the offline change is not in the audit log: %q", audit)
	}

	srv, err := server.New(ctx, server.Config{DataDir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Service().AuthenticateBigDLUser(ctx, "offline", "offline-token-1234"); err != nil {
		t.Fatalf("the server does not see the user created offline: %v", err)
	}

	// The server's checks, with the server's messages.
	for _, tc := range []struct {
		cfg  server.Config
		want string
	}{
		{server.Config{}, "--data-dir is empty"},
		{server.Config{DataDir: t.TempDir(), RootKeyProvider: "vault"}, `--root-key-provider "vault": want file or shamir`},
		{server.Config{DataDir: t.TempDir(), BigDLDataKeyBits: 192}, "--bigdl-data-key-bits 192: want 128 or 256"},
		{server.Config{DataDir: dir, RootKeyFile: filepath.Join(dir, "missing.key")}, "missing.key"},
	} {
		if _, err := server.OpenCore(ctx, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
