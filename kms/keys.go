package kms

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"
	"time"

	"github.com/google/uuid"

	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/store"
	"github.com/ppml-project/ppml/wire/keyinfo"
)

// KeyInfo is the public description of a key (defined with the wire types).
type KeyInfo = keyinfo.Info

func info(k store.Key) KeyInfo {
	return KeyInfo{ID: k.ID, Name: k.Name, Spec: k.Spec, Origin: k.Origin, Usage: k.Usage, State: k.State,
		Version: k.CurrentVersion, CreatedAt: k.CreatedAt, DeletionAt: k.DeletionAt, ReleasePolicies: k.ReleasePolicies}
}

// CreateKeyRequest describes a new primary key.
type CreateKeyRequest struct {
	Spec   string
	Origin string // EH_INTERNAL_KEY (default); EH_EXTERNAL_KEY is refused
	Usage  string // optional
	Name   string // optional per-owner unique name
	// ReleasePolicies binds the key to attestation policies of the owner:
	// its plaintext is then released only to attested workloads.
	ReleasePolicies []string
	// Decrypters are apps (the owner included only if listed) that may
	// still decrypt a bound key without attestation, e.g. data owners
	// reading results.
	Decrypters []string
}

func generateMaterial(spec Spec) ([]byte, error) {
	switch spec.Family {
	case FamilyAES:
		b := make([]byte, spec.Bits/8)
		_, err := rand.Read(b)
		return b, err
	case FamilyRSA:
		k, err := rsa.GenerateKey(rand.Reader, spec.Bits)
		if err != nil {
			return nil, err
		}
		return x509.MarshalPKCS8PrivateKey(k)
	case FamilyEC:
		k, err := ecdsa.GenerateKey(spec.Curve, rand.Reader)
		if err != nil {
			return nil, err
		}
		return x509.MarshalPKCS8PrivateKey(k)
	case FamilySM4:
		b := make([]byte, 16)
		_, err := rand.Read(b)
		return b, err
	case FamilySM2:
		k, err := sm2.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return smx509.MarshalPKCS8PrivateKey(k)
	}
	return nil, errors.New("unknown key family")
}

// generate makes fresh material; RSA generation (seconds of CPU for
// RSA-4096) runs within Limits.RSA, charged to the caller.
func (s *Service) generate(ctx context.Context, c Caller, spec Spec) ([]byte, error) {
	if spec.Family != FamilyRSA {
		return generateMaterial(spec)
	}
	release, err := s.rsa.Acquire(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	defer release()
	return generateMaterial(spec)
}

// CreateKey creates a primary key owned by the caller.
func (s *Service) CreateKey(ctx context.Context, c Caller, req CreateKeyRequest) (ki KeyInfo, err error) {
	defer func() { err = s.record(c, "CreateKey", ki.ID, err) }()
	return s.createKey(ctx, c, req, nil)
}

// createKey creates a key with fresh material, or with imported material
// (migration of upstream keys; AES specs only).
func (s *Service) createKey(ctx context.Context, c Caller, req CreateKeyRequest, imported []byte) (ki KeyInfo, err error) {
	if err := s.requireUnsealed(); err != nil {
		return ki, err
	}
	spec, err := LookupSpec(req.Spec)
	if err != nil {
		return ki, err
	}
	switch req.Origin {
	case "", OriginInternal:
		req.Origin = OriginInternal
	case OriginExternal:
		return ki, fault.Errorf(fault.Unsupported, "unsupported_origin", "EH_EXTERNAL_KEY (import of key material) is not supported; use EH_INTERNAL_KEY")
	default:
		return ki, fault.Errorf(fault.Invalid, "invalid_origin", "Parameter invalid, The origin %q must be EH_INTERNAL_KEY", req.Origin)
	}
	switch req.Usage {
	case "":
		if spec.Family == FamilyEC {
			req.Usage = UsageSignVerify
		} else if spec.Symmetric() {
			req.Usage = UsageEncryptDecrypt
		}
	case UsageEncryptDecrypt:
		if spec.Family == FamilyEC {
			return ki, fault.Errorf(fault.Invalid, "invalid_keyusage", "Parameter invalid, EC keys cannot encrypt; use EH_KEYUSAGE_SIGN_VERIFY or an RSA spec")
		}
	case UsageSignVerify:
		if spec.Symmetric() {
			return ki, fault.Errorf(fault.Invalid, "invalid_keyusage", "Parameter invalid, %s keys cannot sign; use EH_KEYUSAGE_ENCRYPT_DECRYPT or an RSA, EC or SM2 spec", spec.Name)
		}
	default:
		return ki, fault.Errorf(fault.Invalid, "invalid_keyusage", "Parameter invalid, The keyusage %q must be EH_KEYUSAGE_ENCRYPT_DECRYPT or EH_KEYUSAGE_SIGN_VERIFY", req.Usage)
	}
	if req.Name != "" {
		if err := validName("key", req.Name); err != nil {
			return ki, err
		}
	}
	if err := s.checkBinding(ctx, c, req); err != nil {
		return ki, err
	}
	material := imported
	if material == nil {
		if material, err = s.generate(ctx, c, spec); err != nil {
			return ki, s.internal("CreateKey", err)
		}
	} else if spec.Family != FamilyAES || len(material)*8 != spec.Bits {
		return ki, fault.Errorf(fault.Invalid, "invalid_import", "imported material of %d bytes does not fit %s", len(material), spec.Name)
	} else {
		req.Origin = OriginExternal // recorded: this material was made elsewhere
	}
	now := s.now().UTC()
	k := store.Key{ID: uuid.NewString(), Owner: c.ID, Name: req.Name, Spec: spec.Name, Origin: req.Origin, Usage: req.Usage,
		State: store.StateEnabled, CurrentVersion: 1, CreatedAt: now,
		ReleasePolicies: req.ReleasePolicies, Decrypters: req.Decrypters}
	if k.MAC, err = s.keyMAC(ctx, k); err != nil {
		return ki, err
	}
	err = s.cfg.Root.Seal(ctx, material, store.KeyMaterialAAD(k.ID, 1, k.Owner, k.Spec), func(wrapped []byte) error {
		return s.cfg.Store.CreateKey(ctx, k, store.KeyVersion{KeyID: k.ID, Version: 1, Material: wrapped, CreatedAt: now})
	})
	if errors.Is(err, store.ErrExists) {
		return ki, fault.Errorf(fault.Conflict, "key_exists", "a key named [%s] already exists for this owner; pick another name", req.Name)
	}
	if err != nil {
		return ki, s.internal("CreateKey", err)
	}
	return info(k), nil
}

func (s *Service) checkBinding(ctx context.Context, c Caller, req CreateKeyRequest) error {
	if len(req.Decrypters) > 0 && len(req.ReleasePolicies) == 0 {
		return fault.Errorf(fault.Invalid, "decrypters_without_policy", "decrypters only make sense for a key bound to release policies; add --release-policy or drop --decrypter")
	}
	if len(req.ReleasePolicies) == 0 {
		return nil
	}
	if spec, _ := LookupSpec(req.Spec); !spec.Symmetric() {
		return fault.Errorf(fault.Invalid, "unbindable_spec", "Parameter invalid, a %s key cannot be bound to a release policy: release hands an attested workload data keys made under an AES key, while %s keys sign and decrypt in the server, with the API key alone; bind an AES key (EH_AES_GCM_256) and wrap the data keys under it", req.Spec, req.Spec)
	}
	if s.release == nil {
		return fault.Errorf(fault.Unsupported, "no_attestation", "this server has no attestation service, so keys cannot be bound to release policies")
	}
	if err := s.release.CheckPolicies(ctx, c.ID, req.ReleasePolicies); err != nil {
		return err
	}
	for _, app := range req.Decrypters {
		a, err := s.cfg.Store.GetApp(ctx, app)
		if err != nil || a.Kind != "ehsm" {
			return fault.Errorf(fault.Invalid, "unknown_decrypter", "decrypter %q is not an enrolled app id", app)
		}
	}
	return nil
}

func notFoundKey(id string) error {
	return fault.Errorf(fault.NotFound, "key_not_found", "keyid error: no key %s is visible to this app (unknown, deleted, or owned by another app)", id)
}

// ownedKey reads a key from the store and enforces tenancy: another owner's
// key is reported exactly like a missing one. Key management uses it, so
// it never acts on a row kept in memory.
func (s *Service) ownedKey(ctx context.Context, c Caller, id string) (store.Key, error) {
	k, err := s.cfg.Store.GetKey(ctx, id)
	return s.checkOwned(ctx, c, id, k, false, err)
}

// loadKey reads a key for a cryptographic operation: the row kept in memory
// when ctx allows it (keycache.go), else the store's. kept reports the
// former, whose MAC has already verified.
func (s *Service) loadKey(ctx context.Context, id string) (k store.Key, kept bool, err error) {
	if k, ok := s.keptKey(ctx, id); ok {
		return k, true, nil
	}
	k, err = s.cfg.Store.GetKey(ctx, id)
	return k, false, err
}

// checkOwned is ownedKey on a key row already read (k, err from loadKey or
// GetKey; kept: from memory, verified).
func (s *Service) checkOwned(ctx context.Context, c Caller, id string, k store.Key, kept bool, err error) (store.Key, error) {
	if errors.Is(err, store.ErrNotFound) || (err == nil && k.Owner != c.ID) {
		return k, notFoundKey(id)
	}
	if err != nil {
		return k, s.internal("key lookup", err)
	}
	// Deleted is final (its material is gone; the sweeper does not renew
	// the MAC), so it needs no check.
	if k.State == store.StateDeleted {
		return k, notFoundKey(id)
	}
	if !kept {
		if err := s.checkKeyRow(ctx, k); err != nil {
			return k, err
		}
		s.keepKey(ctx, k)
	}
	if k.State == store.StatePendingDeletion && !k.DeletionAt.After(s.now()) {
		return k, notFoundKey(id) // due; the sweeper destroys it shortly
	}
	return k, nil
}

// setState changes a key's state with a renewed MAC.
func (s *Service) setState(ctx context.Context, k store.Key, action, state string, deletionAt time.Time) error {
	next := k
	next.State, next.DeletionAt = state, deletionAt
	mac, err := s.keyMAC(ctx, next)
	if err != nil {
		return err
	}
	err = s.cfg.Store.SetKeyState(ctx, k.ID, state, deletionAt, k.MAC, mac)
	if errors.Is(err, store.ErrConflict) {
		return fault.Errorf(fault.Conflict, "key_conflict", "key %s was changed concurrently; retry", k.ID)
	}
	if errors.Is(err, store.ErrNotFound) {
		return notFoundKey(k.ID)
	}
	if err != nil {
		return s.internal(action, err)
	}
	return nil
}

// usableKey loads a key for a cryptographic operation of its owner and
// checks that it may be used.
func (s *Service) usableKey(ctx context.Context, c Caller, id string) (store.Key, error) {
	if err := s.requireUnsealed(); err != nil {
		return store.Key{}, err
	}
	k, kept, err := s.loadKey(ctx, id)
	if k, err = s.checkOwned(ctx, c, id, k, kept, err); err != nil {
		return k, err
	}
	return checkUsable(k)
}

// checkUsable refuses a disabled key and one scheduled for deletion.
func checkUsable(k store.Key) (store.Key, error) {
	id := k.ID
	switch k.State {
	case store.StateDisabled:
		return k, fault.Errorf(fault.Disabled, "key_disabled", "keyid is disabled: key %s is disabled; enable it (EnableKey) to use it", id)
	case store.StatePendingDeletion:
		return k, fault.Errorf(fault.PendingDeletion, "key_pending_deletion", "key %s is scheduled for deletion on %s; cancel the deletion (ppml key cancel-deletion) to use it", id, k.DeletionAt.Format(time.RFC3339))
	}
	return k, nil
}

// material unwraps one version of a key.
func (s *Service) material(ctx context.Context, k store.Key, version int) ([]byte, error) {
	cacheKey := string(store.KeyMaterialAAD(k.ID, version, k.Owner, k.Spec))
	if m, ok := s.cache.Get(cacheKey); ok {
		return m, nil
	}
	v, err := s.cfg.Store.GetKeyVersion(ctx, k.ID, version)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fault.Errorf(fault.Invalid, "unknown_key_version", "key %s has no version %d", k.ID, version)
	}
	if err != nil {
		return nil, s.internal("key lookup", err)
	}
	m, err := s.cfg.Root.Unwrap(v.Material, store.KeyMaterialAAD(k.ID, version, k.Owner, k.Spec))
	if err != nil {
		if cerr := s.cfg.Root.CheckCurrent(ctx); cerr != nil {
			return nil, fault.Errorf(fault.Sealed, "sealed", "%s", cerr.Error())
		}
		s.cfg.Logger.Error("stored key material failed to unwrap: the row was modified or moved", "key_id", k.ID, "version", version)
		return nil, fault.Errorf(fault.Internal, "key_integrity", "Server exception. [key_integrity] the stored material of key %s version %d failed its integrity check; the administrator must restore it from backup", k.ID, version)
	}
	s.cache.Put(cacheKey, m)
	return m, nil
}

// DescribeKey returns a key's description.
func (s *Service) DescribeKey(ctx context.Context, c Caller, id string) (KeyInfo, error) {
	k, err := s.ownedKey(ctx, c, id)
	if err != nil {
		return KeyInfo{}, err
	}
	return info(k), nil
}

// ListKeys lists the caller's keys (deleted ones excluded).
func (s *Service) ListKeys(ctx context.Context, c Caller) (out []KeyInfo, err error) {
	defer func() { err = s.record(c, "ListKey", "", err) }()
	keys, err := s.cfg.Store.ListKeys(ctx, c.ID)
	if err != nil {
		return nil, s.internal("ListKey", err)
	}
	out = []KeyInfo{}
	for _, k := range keys {
		if k.State == store.StateDeleted || (k.State == store.StatePendingDeletion && !k.DeletionAt.After(s.now())) {
			continue
		}
		if err := s.checkKeyRow(ctx, k); err != nil {
			if fault.CodeOf(err) != "key_integrity" {
				return nil, err
			}
			continue // logged; every operation on it answers key_integrity
		}
		out = append(out, info(k))
	}
	return out, nil
}

// SetKeyEnabled enables or disables a key.
func (s *Service) SetKeyEnabled(ctx context.Context, c Caller, id string, enabled bool) (err error) {
	action := "DisableKey"
	if enabled {
		action = "EnableKey"
	}
	defer func() { err = s.record(c, action, id, err) }()
	k, err := s.ownedKey(ctx, c, id)
	if err != nil {
		return err
	}
	if k.State == store.StatePendingDeletion {
		return fault.Errorf(fault.PendingDeletion, "key_pending_deletion", "key %s is scheduled for deletion on %s; cancel the deletion first", id, k.DeletionAt.Format(time.RFC3339))
	}
	state := store.StateDisabled
	if enabled {
		state = store.StateEnabled
	}
	return s.setState(ctx, k, action, state, time.Time{})
}

// ScheduleDeletion schedules a key's deletion after window (the service
// default when zero; at least one day). Until then the key is unusable but
// the deletion can be cancelled; nothing is deleted without this call.
func (s *Service) ScheduleDeletion(ctx context.Context, c Caller, id string, window time.Duration) (when time.Time, err error) {
	defer func() { err = s.record(c, "DeleteKey", id, err) }()
	if window == 0 {
		window = s.cfg.DeletionWindow
	}
	if window < 24*time.Hour {
		return when, fault.Errorf(fault.Invalid, "invalid_window", "the deletion window must be at least 1 day (got %s)", window)
	}
	k, err := s.ownedKey(ctx, c, id)
	if err != nil {
		return when, err
	}
	if k.State == store.StatePendingDeletion {
		return k.DeletionAt, nil
	}
	when = s.now().UTC().Add(window).Truncate(time.Millisecond)
	return when, s.setState(ctx, k, "DeleteKey", store.StatePendingDeletion, when)
}

// CancelDeletion cancels a scheduled deletion; the key comes back disabled.
func (s *Service) CancelDeletion(ctx context.Context, c Caller, id string) (err error) {
	defer func() { err = s.record(c, "CancelKeyDeletion", id, err) }()
	k, err := s.ownedKey(ctx, c, id)
	if err != nil {
		return err
	}
	if k.State != store.StatePendingDeletion {
		return fault.Errorf(fault.Invalid, "not_pending_deletion", "key %s is not scheduled for deletion (state %s)", id, k.State)
	}
	return s.setState(ctx, k, "CancelKeyDeletion", store.StateDisabled, time.Time{})
}

// DestroyDueKeys destroys keys whose scheduled deletion time has passed.
func (s *Service) DestroyDueKeys(ctx context.Context) ([]string, error) {
	ids, err := s.cfg.Store.DestroyDueKeys(ctx, s.now())
	for _, id := range ids {
		// The keys are already destroyed; a lost record is reported to the
		// housekeeping loop, which logs it.
		if aerr := s.record(Caller{ID: "system", API: "scheduler"}, "DestroyKey", id, nil); aerr != nil && err == nil {
			err = aerr
		}
	}
	return ids, err
}

// RotateKey adds a new version of a symmetric key; new encryptions use it,
// older versions keep decrypting what they encrypted.
func (s *Service) RotateKey(ctx context.Context, c Caller, id string) (ki KeyInfo, err error) {
	defer func() { err = s.record(c, "RotateKey", id, err) }()
	if err := s.requireUnsealed(); err != nil {
		return ki, err
	}
	k, err := s.ownedKey(ctx, c, id)
	if err == nil {
		k, err = checkUsable(k)
	}
	if err != nil {
		return ki, err
	}
	spec, _ := LookupSpec(k.Spec)
	if !spec.Symmetric() {
		return ki, fault.Errorf(fault.Unsupported, "rotate_asymmetric", "key %s is asymmetric (%s): rotation would invalidate its public key; create a new key instead", id, k.Spec)
	}
	material, err := generateMaterial(spec)
	if err != nil {
		return ki, s.internal("RotateKey", err)
	}
	v := k.CurrentVersion + 1
	next := k
	next.CurrentVersion = v
	mac, err := s.keyMAC(ctx, next)
	if err != nil {
		return ki, err
	}
	err = s.cfg.Root.Seal(ctx, material, store.KeyMaterialAAD(k.ID, v, k.Owner, k.Spec), func(wrapped []byte) error {
		return s.cfg.Store.AddKeyVersion(ctx, store.KeyVersion{KeyID: k.ID, Version: v, Material: wrapped, CreatedAt: s.now().UTC()}, k.MAC, mac)
	})
	if errors.Is(err, store.ErrConflict) {
		return ki, fault.Errorf(fault.Conflict, "rotation_conflict", "key %s was rotated concurrently; retry", id)
	}
	if err != nil {
		return ki, s.internal("RotateKey", err)
	}
	k.CurrentVersion = v
	return info(k), nil
}
