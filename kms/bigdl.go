package kms

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/store"
)

// Named keys for the BigDL KMS protocol: a user's primary keys and data keys
// are addressed by name. Unlike upstream, a data key remembers which primary
// key (and version) wrapped it, and is wrapped with AES-GCM bound to its
// owner and name.

func dataKeyAAD(owner, name, pkID string, pkVersion int) []byte {
	return []byte(fmt.Sprintf("ppml/bigdl-data-key/v1\x00%s\x00%s\x00%s\x00%d", owner, name, pkID, pkVersion))
}

// CreateNamedPrimaryKey creates a 256-bit AES primary key called name.
func (s *Service) CreateNamedPrimaryKey(ctx context.Context, c Caller, name string) (KeyInfo, error) {
	if err := validName("primary key", name); err != nil {
		return KeyInfo{}, err
	}
	return s.CreateKey(ctx, c, CreateKeyRequest{Spec: "EH_AES_GCM_256", Name: name})
}

func (s *Service) namedPrimaryKey(ctx context.Context, c Caller, name string) (store.Key, error) {
	if err := validName("primary key", name); err != nil {
		return store.Key{}, err
	}
	k, err := s.cfg.Store.GetKeyByName(ctx, c.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return k, fault.Errorf(fault.NotFound, "key_not_found", "primary key [%s] does not exist for this user; create it first (POST /primaryKey/%s)", name, name)
	}
	if err != nil {
		return k, s.internal("key lookup", err)
	}
	return s.symmetricKey(ctx, c, k.ID)
}

// CreateNamedDataKey creates a random data key called dkName wrapped under
// the primary key pkName.
func (s *Service) CreateNamedDataKey(ctx context.Context, c Caller, pkName, dkName string) (err error) {
	dk := make([]byte, s.cfg.BigDLDataKeyBytes)
	if _, err := rand.Read(dk); err != nil {
		return s.internal("CreateDataKey", err)
	}
	return s.storeNamedDataKey(ctx, c, "CreateDataKey", pkName, dkName, dk)
}

func (s *Service) storeNamedDataKey(ctx context.Context, c Caller, action, pkName, dkName string, dk []byte) (err error) {
	var keyID string
	defer func() { err = s.record(c, action, keyID, err) }()
	if err := validName("data key", dkName); err != nil {
		return err
	}
	pk, err := s.namedPrimaryKey(ctx, c, pkName)
	if err != nil {
		return err
	}
	keyID = pk.ID
	m, err := s.material(ctx, pk, pk.CurrentVersion)
	if err != nil {
		return err
	}
	aead, err := aeadFor(pk.Spec, m)
	if err != nil {
		return s.internal(action, err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return s.internal(action, err)
	}
	wrapped := aead.Seal(nonce, nonce, dk, dataKeyAAD(c.ID, dkName, pk.ID, pk.CurrentVersion))
	err = s.cfg.Store.CreateDataKey(ctx, store.DataKey{Owner: c.ID, Name: dkName, PrimaryKeyID: pk.ID,
		PrimaryVersion: pk.CurrentVersion, Wrapped: wrapped, CreatedAt: s.now().UTC()})
	if errors.Is(err, store.ErrExists) {
		return fault.Errorf(fault.Conflict, "datakey_exists", "data key [%s] already exists for this user; pick another name", dkName)
	}
	if err != nil {
		return s.internal(action, err)
	}
	return nil
}

// ImportNamedPrimaryKey stores an upstream BigDL KMS primary key (its raw
// AES material) under name, for migration: keys wrapped with AES-ECB
// upstream are re-wrapped here with AES-GCM under the root key.
func (s *Service) ImportNamedPrimaryKey(ctx context.Context, c Caller, name string, material []byte) (ki KeyInfo, err error) {
	defer func() { err = s.record(c, "ImportPrimaryKey", ki.ID, err) }()
	if err := validName("primary key", name); err != nil {
		return ki, err
	}
	var spec string
	switch len(material) {
	case 16:
		spec = "EH_AES_GCM_128"
	case 24:
		spec = "EH_AES_GCM_192"
	case 32:
		spec = "EH_AES_GCM_256"
	default:
		return ki, fault.Errorf(fault.Invalid, "invalid_import", "an imported primary key must be 16, 24 or 32 bytes, not %d", len(material))
	}
	return s.createKey(ctx, c, CreateKeyRequest{Spec: spec, Name: name}, material)
}

// ImportNamedDataKey stores an upstream data key's plaintext under dkName,
// wrapped under the (imported) primary key pkName.
func (s *Service) ImportNamedDataKey(ctx context.Context, c Caller, pkName, dkName string, dk []byte) error {
	if len(dk) == 0 || len(dk) > MaxDataKeyLen {
		return fault.Errorf(fault.Invalid, "invalid_import", "an imported data key must be 1..%d bytes", MaxDataKeyLen)
	}
	return s.storeNamedDataKey(ctx, c, "ImportDataKey", pkName, dkName, dk)
}

// GetNamedDataKey returns the standard base64 text of data key dkName,
// which must have been made under primary key pkName.
func (s *Service) GetNamedDataKey(ctx context.Context, c Caller, pkName, dkName string) (text string, err error) {
	var keyID string
	defer func() { err = s.record(c, "GetDataKey", keyID, err) }()
	if err := validName("data key", dkName); err != nil {
		return "", err
	}
	pk, err := s.namedPrimaryKey(ctx, c, pkName)
	if err != nil {
		return "", err
	}
	keyID = pk.ID
	if bound(pk) {
		return "", attestationRequired(pk)
	}
	dk, err := s.cfg.Store.GetDataKey(ctx, c.ID, dkName)
	if errors.Is(err, store.ErrNotFound) {
		return "", fault.Errorf(fault.NotFound, "datakey_not_found", "data key [%s] does not exist for this user; create it first (POST /dataKey/%s)", dkName, dkName)
	}
	if err != nil {
		return "", s.internal("GetDataKey", err)
	}
	if dk.PrimaryKeyID != pk.ID {
		return "", fault.Errorf(fault.Invalid, "wrong_primary_key", "data key [%s] was not generated under primary key [%s]; name the primary key it was made with", dkName, pkName)
	}
	m, err := s.material(ctx, pk, dk.PrimaryVersion)
	if err != nil {
		return "", err
	}
	aead, err := aeadFor(pk.Spec, m)
	if err != nil {
		return "", s.internal("GetDataKey", err)
	}
	ns := aead.NonceSize()
	if len(dk.Wrapped) < ns+aead.Overhead() {
		return "", fault.Errorf(fault.Internal, "key_integrity", "Server exception. [key_integrity] stored data key [%s] is corrupt", dkName)
	}
	pt, err := aead.Open(nil, dk.Wrapped[:ns], dk.Wrapped[ns:], dataKeyAAD(c.ID, dkName, pk.ID, dk.PrimaryVersion))
	if err != nil {
		return "", fault.Errorf(fault.Internal, "key_integrity", "Server exception. [key_integrity] stored data key [%s] failed its integrity check", dkName)
	}
	return base64.StdEncoding.EncodeToString(pt), nil
}
