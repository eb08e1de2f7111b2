package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/ppml-project/ppml/audit"
	"github.com/ppml-project/ppml/internal/fileperm"
	"github.com/ppml-project/ppml/kms"
	"github.com/ppml-project/ppml/kms/rootkey"
	"github.com/ppml-project/ppml/store/instrumented"
	"github.com/ppml-project/ppml/store/sqlstore"
)

// Core is the KMS of a data directory without what serves it: the store,
// the root keyring, the audit log and the kms service over them. ppml serve
// builds on it; offline tools (ppml operator import-bigdl-kms) open only
// the core, with the same flags as the server.
type Core struct {
	Store   *instrumented.Store // every call timed for ppml serve's metrics
	Root    *rootkey.Keyring
	Audit   *audit.Logger
	Service *kms.Service
}

// OpenCore opens the core that cfg describes. It reads DataDir, DB,
// RootKeyProvider, RootKeyFile, AdminTokenFile, AuditLog, AuditSync,
// DeletionWindow, OpenEnrollment, BigDLDataKeyBits, Logger and Now, and
// nothing that serves (no TLS, listeners, attestation or metrics).
// Files of the audit checkpoint key in the data directory.
const (
	AuditCheckpointKey = "audit-checkpoint.key"
	AuditCheckpointPub = "audit-checkpoint.pub"
)

func OpenCore(ctx context.Context, cfg Config) (*Core, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return openCore(ctx, cfg, nil)
}

// openCore opens the core; observe, when set, times every store call.
func openCore(ctx context.Context, cfg Config, observe func(op string, err error, d time.Duration)) (*Core, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("--data-dir is empty")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	// Everything under the data directory is private: keys, tokens, the
	// database and its -wal/-shm (which SQLite creates with the mode of
	// the database file), the audit log.
	if err := fileperm.Tighten(cfg.DataDir, cfg.Logger); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	c := &Core{}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	dsn := cfg.DB
	if dsn == "" {
		dsn = filepath.Join(cfg.DataDir, "ppml.db")
		// Created 0600 here so that SQLite's -wal and -shm files are too.
		f, err := os.OpenFile(dsn, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("creating the database file: %w", err)
		}
		f.Close()
	}
	db, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if observe == nil {
		observe = func(string, error, time.Duration) {}
	}
	st := instrumented.New(db, observe)
	c.Store = st

	var kr *rootkey.Keyring
	switch cfg.RootKeyProvider {
	case "", "file":
		path, create := cfg.RootKeyFile, false
		if path == "" {
			path, create = filepath.Join(cfg.DataDir, "root.key"), true
		}
		var created bool
		kr, created, err = rootkey.OpenFile(ctx, st, path, create)
		if err != nil {
			return nil, err
		}
		if create {
			cfg.Logger.Warn("root key kept in a file in the data directory: for development only; use --root-key-file (a mounted Secret) or --root-key-provider shamir in production", "path", path, "created", created)
		}
	case "shamir":
		kr, err = rootkey.NewShamir(ctx, st)
		if err != nil {
			return nil, err
		}
		if kr.Initialized() {
			cfg.Logger.Warn("KMS is sealed: submit 3 of 5 root key shares with `ppml operator unseal` (or PUT /rootKey/recover)")
		} else {
			cfg.Logger.Warn("KMS has no root key yet: run `ppml operator init` to create it and receive the 5 shares")
		}
	default:
		return nil, fmt.Errorf("--root-key-provider %q: want file or shamir", cfg.RootKeyProvider)
	}

	adminToken, adminHash, err := adminCredential(cfg)
	if err != nil {
		return nil, err
	}
	auditPath := cfg.AuditLog
	if auditPath == "" {
		auditPath = filepath.Join(cfg.DataDir, "audit.log")
	}
	auditSync, err := audit.ParseSync(cfg.AuditSync)
	if err != nil {
		return nil, err
	}
	if c.Audit, err = audit.OpenFile(auditPath, auditSync); err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	// Signed checkpoints of the audit hash chain; the public key (keep a
	// copy away from this machine) verifies them: ppml audit verify.
	ck, err := audit.LoadOrCreateCheckpointKey(filepath.Join(cfg.DataDir, AuditCheckpointKey), filepath.Join(cfg.DataDir, AuditCheckpointPub))
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint key: %w", err)
	}
	c.Audit.SetCheckpointKey(ck)
	dkBytes := 32
	switch cfg.BigDLDataKeyBits {
	case 0, 256:
	case 128:
		dkBytes = 16
	default:
		return nil, fmt.Errorf("--bigdl-data-key-bits %d: want 128 or 256", cfg.BigDLDataKeyBits)
	}
	c.Root = kr
	c.Service = kms.New(kms.Config{Store: st, Root: kr, Audit: c.Audit, Logger: cfg.Logger, Now: cfg.Now,
		DeletionWindow: cfg.DeletionWindow, AdminToken: adminToken, AdminTokenSHA256: adminHash, OpenEnrollment: cfg.OpenEnrollment, BigDLDataKeyBytes: dkBytes,
		Limits: kms.Limits{Argon: cfg.Limits.Argon, RSA: cfg.Limits.RSA}, AuthFailureDelay: authFailureDelay(cfg)})
	ok = true
	return c, nil
}

// Close closes the store and the audit log.
func (c *Core) Close() {
	if c.Store != nil {
		c.Store.Close()
	}
	c.Audit.Close()
}
