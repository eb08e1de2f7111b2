// Package keysource defines how the data formats obtain data keys, independent
// of any network client.
//
// A data key is handled as its "data-key string": the standard base64 text of
// the raw key bytes, exactly as KMSs hand it out. BigDL's formats derive their
// keys from that text (see dataformat/bigdl); the ppml stream format decodes
// it and derives keys from the raw bytes (see dataformat/stream).
//
// A Source creates a fresh data key together with its wrapped form (the
// "encryptedDataKey" that is stored in file headers and in BigDL's .meta
// files), and later recovers the data-key string from the wrapped form.
// Implementations: PlainText in this package (BigDL's
// spark.bigdl.primaryKey.<name>.plainText mode); KMS-backed sources (our KMS,
// eHSM-compatible KMSs, BigDL KMS) live elsewhere and implement the same
// interface.
package keysource

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// KeyRef names the primary (key-encryption) key a data key was wrapped under.
// The ppml stream format stores it, authenticated, in every file header, so
// that decryption can find the key; BigDL formats do not store it (their
// files carry only the wrapped data key), so sources must work with a zero
// KeyRef when opening BigDL data and use their configured primary key.
type KeyRef struct {
	// Kind names the kind of source, e.g. "plaintext", "ppml-kms", "ehsm",
	// "bigdl-kms". At most 255 bytes.
	Kind string
	// ID is the primary key's identifier at the source (KMS key id, BigDL
	// primary-key name, or for PlainText a fingerprint of the key).
	ID string
	// Version is the primary key's version when the source versions keys,
	// "" otherwise.
	Version string
}

// String formats the reference for messages.
func (r KeyRef) String() string {
	if r == (KeyRef{}) {
		return "(none)"
	}
	s := r.Kind + ":" + r.ID
	if r.Version != "" {
		s += "@" + r.Version
	}
	return s
}

// DataKey is a freshly created data key.
type DataKey struct {
	// Plaintext is the data-key string: standard base64 of the raw key.
	Plaintext string
	// Wrapped is the wrapped data key ("encryptedDataKey"), printable text.
	Wrapped string
	// Ref names the primary key Wrapped was made with.
	Ref KeyRef
}

// Request says what a new data key is for.
type Request struct {
	// BigDL is true when the key protects BigDL-format data (COMMON format or
	// Parquet modular encryption) that Spark with BigDL must be able to
	// read. The source must then produce the wrapping BigDL's own KMS client
	// for that source expects (eHSM ciphertext, BigDL-KMS data-key name,
	// AES-ECB under a plain-text primary key), and Wrapped must not exceed
	// 376 bytes (the BigDL header limit). When false, the source may use a
	// stronger wrapping of its own choice.
	BigDL bool
	// Bytes is the wanted raw key length, 16 or 32; 0 means the source's
	// default (32 where the source can choose: it doubles the effective key
	// material of BigDL's character-based key derivation at no cost).
	// Sources whose KMS fixes the length (BigDL KMS: 16) may ignore it.
	Bytes int
}

// Source obtains data keys. Implementations must be safe for concurrent use.
type Source interface {
	// NewDataKey creates a fresh data key and wraps it.
	NewDataKey(ctx context.Context, req Request) (DataKey, error)
	// OpenDataKey recovers the data-key string from its wrapped form. ref is
	// the reference stored with the data (zero for BigDL formats). Errors
	// should say which key was needed and why it could not be opened.
	OpenDataKey(ctx context.Context, wrapped string, ref KeyRef) (string, error)
}

// ErrWrongKey is wrapped by errors caused by a key that does not match the
// data (wrong primary key, or a corrupted wrapped key).
var ErrWrongKey = errors.New("wrong key or corrupted wrapped data key")

// DecodeDataKey decodes a data-key string to raw bytes, for formats that use
// the raw key. It accepts standard base64 with padding.
func DecodeDataKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("data key is not standard base64 text: %w", err)
	}
	return b, nil
}
