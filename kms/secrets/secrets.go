// Package secrets is the secret manager (eHSM's CreateSecret ... RestoreSecret,
// ehsm-protocol.md §14): per-app named secrets with numbered versions,
// scheduled deletion with restore, and forced deletion. Every value is
// wrapped under the root keyring with its owner, name and version as
// associated data (store.SecretAAD); with an encryptionKeyId it is first
// encrypted under that CMK of the owner, so disabling or deleting the CMK
// makes the secret unreadable. Another app's secret is answered exactly
// like a name that does not exist.
package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/ppml-project/ppml/audit"
	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/kms"
	"github.com/ppml-project/ppml/kms/rootkey"
	"github.com/ppml-project/ppml/store"
)

// Limits, as eHSM's payload checker has them.
const (
	MaxNameLen        = 64
	MaxDataLen        = 4096
	MaxDescriptionLen = 4096
	MaxRecoveryDays   = 365
	// DefaultRecoveryDays is eHSM's DEFAULT_DELETE_RECOVERY_DAYS.
	DefaultRecoveryDays = 30
)

// Config wires the service.
type Config struct {
	Store  store.SecretStore
	Root   *rootkey.Keyring
	Keys   *kms.Service // encrypts values under an encryptionKeyId
	Audit  *audit.Logger
	Logger *slog.Logger
	Now    func() time.Time
}

// Service is the secret manager core.
type Service struct {
	cfg Config
	now func() time.Time
}

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Service{cfg: cfg, now: now}
}

// Secret is a secret's metadata as the API shows it.
type Secret struct {
	Name             string
	Description      string
	CreatedAt        time.Time
	DeletionAt       time.Time // zero unless deletion is scheduled
	RotationInterval string
	NextRotation     time.Time // zero without a rotation interval
	LastRotation     time.Time // the newest version's time when it is not the first
}

// Version is one value's number and time.
type Version struct {
	Version   int
	CreatedAt time.Time
}

// Value is a secret value.
type Value struct {
	Name      string
	Data      string
	Version   int
	CreatedAt time.Time
}

// CreateRequest is CreateSecret's input.
type CreateRequest struct {
	Name, Data, EncryptionKeyID, Description, RotationInterval string
}

var rotationPattern = regexp.MustCompile(`^(\d{1,4})([dhms])$`)

// rotationPeriod parses eHSM's rotation interval: 1-4 digits and d, h, m
// or s, between 6 hours and 8760 hours, as eHSM accepts it.
func rotationPeriod(s string) (time.Duration, error) {
	m := rotationPattern.FindStringSubmatch(s)
	if m == nil {
		return 0, invalid("invalid_rotation_interval", "Parameter invalid, The rotationInterval format wrong: %q, want 1 to 4 digits and d, h, m or s, such as \"30d\"", s)
	}
	n, _ := strconv.Atoi(m[1])
	unit := map[string]time.Duration{"d": 24 * time.Hour, "h": time.Hour, "m": time.Minute, "s": time.Second}[m[2]]
	d := time.Duration(n) * unit
	if d < 6*time.Hour || d > 8760*time.Hour {
		return 0, invalid("invalid_rotation_interval", "The rotation time is less than 6 hours or more than 8760 hours (%s)", s)
	}
	return d, nil
}

func invalid(code, format string, args ...any) error {
	return fault.Errorf(fault.Invalid, code, format, args...)
}

func notFound(name string) error {
	return fault.Errorf(fault.NotFound, "secret_not_found", "Cannot find secretName %q: no secret of this app has this name", name)
}

func checkName(name string) error { return checkField("secretName", name, true, MaxNameLen) }

func checkData(data string) error { return checkField("secretData", data, true, MaxDataLen) }

func checkDescription(d string) error {
	return checkField("description", d, false, MaxDescriptionLen)
}

// checkField refuses, in eHSM's words, a value longer than max characters
// and, if required, an empty one.
func checkField(field, value string, required bool, max int) error {
	if required && value == "" {
		return invalid("missing_parameter", "Missing required parameters, The %s cannot be empty.", field)
	}
	if n := utf8.RuneCountInString(value); n > max {
		return invalid("invalid_parameter", "Parameter invalid, The %s length error: %d characters, at most %d.", field, n, max)
	}
	return nil
}

// record audits one operation; an operation that cannot be audited is
// not acknowledged.
func (s *Service) record(c kms.Caller, action, name string, err error) error {
	ev := audit.Event{Time: s.now().UTC(), API: c.API, Principal: c.ID, Action: action, KeyID: "secret:" + name, Remote: c.Remote, Result: "ok"}
	if err != nil {
		ev.Result, ev.Reason = fault.CodeOf(err), err.Error()
	}
	if s.cfg.Audit == nil {
		return err
	}
	if aerr := s.cfg.Audit.Record(ev); aerr != nil {
		s.cfg.Logger.Error("audit record not written: failing the request", "action", action, "err", aerr)
		return audit.Refusal(action)
	}
	return err
}

func (s *Service) internal(op string, err error) error {
	return kms.InternalError(s.cfg.Logger, op, err)
}

// live returns c's secret name unless it is missing or scheduled for deletion.
func (s *Service) live(ctx context.Context, c kms.Caller, name, verb string) (store.Secret, error) {
	sec, err := s.get(ctx, c, name)
	if err != nil {
		return sec, err
	}
	if !sec.DeletionAt.IsZero() {
		return sec, fault.Errorf(fault.PendingDeletion, "secret_pending_deletion",
			"Can not %s a deleted secret: %q is scheduled for deletion at %s; RestoreSecret it first", verb, name, sec.DeletionAt.UTC().Format(time.RFC3339))
	}
	return sec, nil
}

func (s *Service) get(ctx context.Context, c kms.Caller, name string) (store.Secret, error) {
	if err := checkName(name); err != nil {
		return store.Secret{}, err
	}
	sec, err := s.cfg.Store.GetSecret(ctx, c.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return sec, notFound(name)
	}
	if err != nil {
		return sec, s.internal("GetSecret", err)
	}
	return sec, nil
}

// store encrypts one value, under the CMK first when there is one, then
// wraps it under the root keyring bound to the value's identity and hands
// the blob to put (Keyring.Seal: wrapped again if another replica rotated
// the root key meanwhile).
func (s *Service) store(ctx context.Context, c kms.Caller, sec store.Secret, version int, data string, put func(blob []byte) error) error {
	aad := store.SecretAAD(c.ID, sec.Name, version)
	pt := []byte(data)
	if sec.EncryptionKeyID != "" {
		ct, err := s.cfg.Keys.Encrypt(ctx, c, sec.EncryptionKeyID, pt, aad)
		if err != nil {
			return err
		}
		pt = ct
	}
	return s.cfg.Root.Seal(ctx, pt, aad, put)
}

func (s *Service) open(ctx context.Context, c kms.Caller, sec store.Secret, v store.SecretVersion) (string, error) {
	aad := store.SecretAAD(c.ID, sec.Name, v.Version)
	pt, err := s.cfg.Root.Unwrap(v.Wrapped, aad)
	if err != nil {
		if errors.Is(err, rootkey.ErrSealed) || errors.Is(err, rootkey.ErrUninitialized) {
			return "", s.internal("unwrap", err)
		}
		s.cfg.Logger.Error("secret value does not unwrap: the row was modified or belongs elsewhere", "owner", c.ID, "secret", sec.Name, "version", v.Version)
		return "", fault.Errorf(fault.Internal, "secret_integrity", "Server internal error: the stored value of secret %q version %d fails its integrity check; please contact the administrator", sec.Name, v.Version)
	}
	if sec.EncryptionKeyID != "" {
		if pt, err = s.cfg.Keys.Decrypt(ctx, c, sec.EncryptionKeyID, pt, aad); err != nil {
			return "", err
		}
	}
	return string(pt), nil
}

// Create stores a new secret with version 1.
func (s *Service) Create(ctx context.Context, c kms.Caller, req CreateRequest) (err error) {
	defer func() { err = s.record(c, "CreateSecret", req.Name, err) }()
	if err := checkName(req.Name); err != nil {
		return err
	}
	if err := checkData(req.Data); err != nil {
		return err
	}
	if err := checkDescription(req.Description); err != nil {
		return err
	}
	if req.RotationInterval != "" {
		if _, err := rotationPeriod(req.RotationInterval); err != nil {
			return err
		}
	}
	if req.EncryptionKeyID != "" && s.cfg.Keys == nil {
		return fault.Errorf(fault.Unsupported, "unsupported", "encryptionKeyId is not supported on this server")
	}
	now := s.now()
	sec := store.Secret{Owner: c.ID, Name: req.Name, Description: req.Description, EncryptionKeyID: req.EncryptionKeyID,
		RotationInterval: req.RotationInterval, CreatedAt: now}
	if _, err := s.cfg.Store.GetSecret(ctx, c.ID, req.Name); err == nil {
		return fault.Errorf(fault.Conflict, "secret_exists", "Secret name already exists, cannot use the same secret name %q (PutSecretValue adds a version)", req.Name)
	}
	err = s.store(ctx, c, sec, 1, req.Data, func(blob []byte) error {
		return s.cfg.Store.CreateSecret(ctx, sec, store.SecretVersion{Owner: c.ID, Name: req.Name, Version: 1, Wrapped: blob, CreatedAt: now})
	})
	var fe *fault.Error
	if errors.As(err, &fe) {
		return err
	}
	if errors.Is(err, store.ErrExists) {
		return fault.Errorf(fault.Conflict, "secret_exists", "Secret name already exists, cannot use the same secret name %q (PutSecretValue adds a version)", req.Name)
	}
	if err != nil {
		return s.internal("CreateSecret", err)
	}
	return nil
}

// UpdateDescription replaces the description.
func (s *Service) UpdateDescription(ctx context.Context, c kms.Caller, name, description string) (err error) {
	defer func() { err = s.record(c, "UpdateSecretDesc", name, err) }()
	if err := checkDescription(description); err != nil {
		return err
	}
	sec, err := s.live(ctx, c, name, "modify")
	if err != nil {
		return err
	}
	sec.Description = description
	if err := s.cfg.Store.UpdateSecret(ctx, sec); err != nil {
		return s.internal("UpdateSecretDesc", err)
	}
	return nil
}

// PutValue stores a new version and returns its number.
func (s *Service) PutValue(ctx context.Context, c kms.Caller, name, data string) (version int, err error) {
	defer func() { err = s.record(c, "PutSecretValue", name, err) }()
	if err := checkData(data); err != nil {
		return 0, err
	}
	sec, err := s.live(ctx, c, name, "put value for")
	if err != nil {
		return 0, err
	}
	// Concurrent puts race for the next number (the value is bound to it,
	// so it is chosen before sealing); the loser retries. Each retry means
	// another put was committed, so the system progresses; the bound only
	// guards against a broken store.
	for range 100 {
		last, err := s.cfg.Store.GetSecretVersion(ctx, c.ID, name, 0)
		if err != nil {
			return 0, s.internal("PutSecretValue", err)
		}
		v := store.SecretVersion{Owner: c.ID, Name: name, Version: last.Version + 1, CreatedAt: s.now()}
		err = s.store(ctx, c, sec, v.Version, data, func(blob []byte) error {
			v.Wrapped = blob
			return s.cfg.Store.AddSecretVersion(ctx, v)
		})
		var fe *fault.Error
		if errors.As(err, &fe) {
			return 0, err
		}
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return 0, s.internal("PutSecretValue", err)
		}
		return v.Version, nil
	}
	return 0, fault.Errorf(fault.Unavailable, "concurrent_update", "too many concurrent PutSecretValue calls for %q; retry", name)
}

// Versions lists a live secret's versions, oldest first.
func (s *Service) Versions(ctx context.Context, c kms.Caller, name string) (out []Version, err error) {
	defer func() { err = s.record(c, "ListSecretVersionIds", name, err) }()
	if _, err := s.live(ctx, c, name, "list the versions of"); err != nil {
		return nil, err
	}
	vs, err := s.cfg.Store.ListSecretVersions(ctx, c.ID, name)
	if err != nil {
		return nil, s.internal("ListSecretVersionIds", err)
	}
	for _, v := range vs {
		out = append(out, Version{Version: v.Version, CreatedAt: v.CreatedAt})
	}
	return out, nil
}

// List returns the caller's secrets, or the one called name.
func (s *Service) List(ctx context.Context, c kms.Caller, name string) (out []Secret, err error) {
	defer func() { err = s.record(c, "ListSecrets", name, err) }()
	if name != "" {
		if err := checkName(name); err != nil {
			return nil, err
		}
	}
	secs, err := s.cfg.Store.ListSecrets(ctx, c.ID, name)
	if err != nil {
		return nil, s.internal("ListSecrets", err)
	}
	for _, sec := range secs {
		out = append(out, Secret{Name: sec.Name, Description: sec.Description, CreatedAt: sec.CreatedAt, DeletionAt: sec.DeletionAt, RotationInterval: sec.RotationInterval})
	}
	return out, nil
}

// Describe returns a secret's metadata, also while its deletion is pending.
func (s *Service) Describe(ctx context.Context, c kms.Caller, name string) (out Secret, err error) {
	defer func() { err = s.record(c, "DescribeSecret", name, err) }()
	sec, err := s.get(ctx, c, name)
	if err != nil {
		return out, err
	}
	out = Secret{Name: sec.Name, Description: sec.Description, CreatedAt: sec.CreatedAt, DeletionAt: sec.DeletionAt, RotationInterval: sec.RotationInterval}
	if sec.RotationInterval != "" {
		last, err := s.cfg.Store.GetSecretVersion(ctx, c.ID, name, 0)
		if err != nil {
			return out, s.internal("DescribeSecret", err)
		}
		period, _ := rotationPeriod(sec.RotationInterval)
		if last.Version > 1 {
			out.LastRotation = last.CreatedAt
		}
		out.NextRotation = last.CreatedAt.Add(period)
	}
	return out, nil
}

// Delete schedules the deletion after recoveryDays (0: the default 30), or,
// with force, destroys every version now. It returns the planned time.
func (s *Service) Delete(ctx context.Context, c kms.Caller, name string, recoveryDays int, force bool) (when time.Time, err error) {
	defer func() { err = s.record(c, "DeleteSecret", name, err) }()
	if recoveryDays == 0 {
		recoveryDays = DefaultRecoveryDays
	}
	if recoveryDays < 1 || recoveryDays > MaxRecoveryDays {
		return when, invalid("invalid_parameter", "Parameter invalid, The recoveryPeriod must be between 1 and %d days (got %d).", MaxRecoveryDays, recoveryDays)
	}
	sec, err := s.get(ctx, c, name)
	if err != nil {
		return when, err
	}
	if force {
		if err := s.cfg.Store.DestroySecret(ctx, c.ID, name); errors.Is(err, store.ErrNotFound) {
			return when, notFound(name)
		} else if err != nil {
			return when, s.internal("DeleteSecret", err)
		}
		return s.now(), nil
	}
	if !sec.DeletionAt.IsZero() {
		return sec.DeletionAt, nil // already scheduled: keep the first date
	}
	sec.DeletionAt = s.now().Add(time.Duration(recoveryDays) * 24 * time.Hour)
	if err := s.cfg.Store.UpdateSecret(ctx, sec); err != nil {
		return when, s.internal("DeleteSecret", err)
	}
	return sec.DeletionAt, nil
}

// Restore cancels a scheduled deletion.
func (s *Service) Restore(ctx context.Context, c kms.Caller, name string) (err error) {
	defer func() { err = s.record(c, "RestoreSecret", name, err) }()
	sec, err := s.get(ctx, c, name)
	if err != nil {
		return err
	}
	if sec.DeletionAt.IsZero() {
		return fault.Errorf(fault.Invalid, "secret_not_deleted", "Can not restore secret %q: its deletion is not scheduled", name)
	}
	sec.DeletionAt = time.Time{}
	if err := s.cfg.Store.UpdateSecret(ctx, sec); err != nil {
		return s.internal("RestoreSecret", err)
	}
	return nil
}

// Value returns version (0: the newest) of a live secret.
func (s *Service) Value(ctx context.Context, c kms.Caller, name string, version int) (out Value, err error) {
	defer func() { err = s.record(c, "GetSecretValue", name, err) }()
	if version < 0 {
		return out, invalid("invalid_parameter", "Parameter invalid, The versionId value must be greater than or equal to 1.")
	}
	sec, err := s.live(ctx, c, name, "read")
	if err != nil {
		return out, err
	}
	v, err := s.cfg.Store.GetSecretVersion(ctx, c.ID, name, version)
	if errors.Is(err, store.ErrNotFound) {
		return out, fault.Errorf(fault.NotFound, "secret_version_not_found", "Can't find the %s's value: version %d does not exist (ListSecretVersionIds lists them)", name, version)
	}
	if err != nil {
		return out, s.internal("GetSecretValue", err)
	}
	data, err := s.open(ctx, c, sec, v)
	if err != nil {
		return out, err
	}
	return Value{Name: name, Data: data, Version: v.Version, CreatedAt: v.CreatedAt}, nil
}

// DestroyDue destroys secrets whose scheduled deletion time has passed.
func (s *Service) DestroyDue(ctx context.Context) (int, error) {
	n, err := s.cfg.Store.DestroyDueSecrets(ctx, s.now())
	if err != nil {
		return 0, fmt.Errorf("destroying due secrets: %w", err)
	}
	if n > 0 {
		s.cfg.Logger.Info("secrets destroyed after their recovery period", "count", n)
	}
	return n, nil
}
