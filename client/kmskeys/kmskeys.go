// Package kmskeys implements dataformat/keysource.Source over key
// management services: any eHSM-compatible KMS (ours or Intel's), where the
// wrapped data key is the KMS ciphertext, and a BigDL KMS, where the wrapped
// data key is a data-key name.
package kmskeys

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/dataformat/keysource"
)

// BigDLAAD is the AAD BigDL's EHSMKeyManagementService sends ("test",
// base64 text); data keys are made with it so that Spark with BigDL can
// unwrap them through the same KMS.
const BigDLAAD = "test"

// EHSM wraps data keys with GenerateDataKey under one primary key id.
type EHSM struct {
	Client *client.EHSM
	KeyID  string // primary key for new data keys
}

var _ keysource.Source = (*EHSM)(nil)

// NewDataKey implements keysource.Source.
func (e *EHSM) NewDataKey(ctx context.Context, req keysource.Request) (keysource.DataKey, error) {
	if e.KeyID == "" {
		return keysource.DataKey{}, errors.New("no primary key: pass --key-id (create one with ppml key create)")
	}
	n := req.Bytes
	if n == 0 {
		n = 32
	}
	res, err := e.Client.Call(ctx, "GenerateDataKey", map[string]any{"keyid": e.KeyID, "keylen": n, "aad": BigDLAAD})
	if err != nil {
		return keysource.DataKey{}, fmt.Errorf("KMS GenerateDataKey with key %s: %w", e.KeyID, err)
	}
	pt, _ := res["plaintext"].(string)
	ct, _ := res["ciphertext"].(string)
	if pt == "" || ct == "" {
		return keysource.DataKey{}, errors.New("the KMS answered GenerateDataKey without plaintext or ciphertext")
	}
	return keysource.DataKey{Plaintext: pt, Wrapped: ct, Ref: keysource.KeyRef{Kind: "ehsm", ID: e.KeyID, Version: KeyVersion(ct)}}, nil
}

// OpenDataKey implements keysource.Source: the key id comes from ref, from
// our self-describing ciphertext, or from the configured key id.
func (e *EHSM) OpenDataKey(ctx context.Context, wrapped string, ref keysource.KeyRef) (string, error) {
	keyID := ref.ID
	if keyID == "" {
		keyID = KeyIDOf(wrapped)
	}
	if keyID == "" {
		keyID = e.KeyID
	}
	if keyID == "" {
		return "", errors.New("the data does not name its primary key: pass --key-id")
	}
	pt, err := e.Client.Decrypt(ctx, keyID, wrapped, BigDLAAD)
	if err != nil {
		return "", fmt.Errorf("KMS Decrypt of the data key with key %s: %w", keyID, err)
	}
	return pt, nil
}

// KeyIDOf returns the key id inside a ppml KMS ciphertext (base64), or "".
func KeyIDOf(wrappedB64 string) string {
	b, err := base64.StdEncoding.DecodeString(wrappedB64)
	if err != nil || len(b) < 21 || b[0] != 0x01 {
		return ""
	}
	id, err := uuid.FromBytes(b[1:17])
	if err != nil {
		return ""
	}
	return id.String()
}

// KeyVersion returns the key version inside a ppml KMS ciphertext, or "".
func KeyVersion(wrappedB64 string) string {
	b, err := base64.StdEncoding.DecodeString(wrappedB64)
	if err != nil || len(b) < 21 || b[0] != 0x01 {
		return ""
	}
	return fmt.Sprint(uint32(b[17])<<24 | uint32(b[18])<<16 | uint32(b[19])<<8 | uint32(b[20]))
}

// BigDL makes named data keys in a BigDL KMS under one primary key name; the
// wrapped data key is the data-key name, as BigDL stores it in .meta files.
type BigDL struct {
	Client     *client.BigDLKMS
	PrimaryKey string
}

var _ keysource.Source = (*BigDL)(nil)

// NewDataKey implements keysource.Source.
func (b *BigDL) NewDataKey(ctx context.Context, req keysource.Request) (keysource.DataKey, error) {
	if b.PrimaryKey == "" {
		return keysource.DataKey{}, errors.New("no BigDL primary key name: pass --bigdl-primary-key")
	}
	name := uuid.NewString()
	if err := b.Client.CreateDataKey(ctx, b.PrimaryKey, name); err != nil {
		return keysource.DataKey{}, err
	}
	text, err := b.Client.DataKey(ctx, b.PrimaryKey, name)
	if err != nil {
		return keysource.DataKey{}, err
	}
	return keysource.DataKey{Plaintext: text, Wrapped: name, Ref: keysource.KeyRef{Kind: "bigdl-kms", ID: b.PrimaryKey}}, nil
}

// OpenDataKey implements keysource.Source.
func (b *BigDL) OpenDataKey(ctx context.Context, wrapped string, ref keysource.KeyRef) (string, error) {
	pk := ref.ID
	if pk == "" {
		pk = b.PrimaryKey
	}
	if pk == "" {
		return "", errors.New("the data does not name its BigDL primary key: pass --bigdl-primary-key")
	}
	return b.Client.DataKey(ctx, pk, wrapped)
}
