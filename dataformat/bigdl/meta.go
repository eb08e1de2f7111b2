package bigdl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ppml-project/ppml/internal/atomicfile"
)

// MarshalMeta encodes a .meta file as BigDL writes it: one JSON object with
// the field encryptedDataKey, followed by a newline.
func MarshalMeta(encryptedDataKey string) []byte {
	v, _ := json.Marshal(encryptedDataKey)
	return []byte(`{"encryptedDataKey" : ` + string(v) + "}\n")
}

// ParseMeta decodes a .meta file: a single JSON object whose only member is
// encryptedDataKey with a non-empty string value, surrounded by nothing but
// JSON whitespace. The member name is matched case-insensitively, as BigDL's
// Jackson mapper (ACCEPT_CASE_INSENSITIVE_PROPERTIES) reads it; two members
// that both match, or any other member, are refused rather than guessed.
func ParseMeta(b []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		return "", fmt.Errorf("invalid .meta: not a JSON object (%v)", err)
	}
	if dec.More() || strings.TrimLeft(string(b[dec.InputOffset():]), " \t\r\n") != "" {
		return "", errors.New("invalid .meta: unexpected content after the JSON object")
	}
	var raw json.RawMessage
	found := ""
	for k, v := range m {
		if !strings.EqualFold(k, "encryptedDataKey") {
			return "", fmt.Errorf(`invalid .meta: unexpected member %q; a BigDL .meta holds only "encryptedDataKey"`, trunc(k))
		}
		if found != "" {
			return "", fmt.Errorf(`invalid .meta: both %q and %q name encryptedDataKey (names are matched case-insensitively, as BigDL does); keep one`, found, k)
		}
		found, raw = k, v
	}
	if found == "" {
		return "", errors.New(`invalid .meta: member "encryptedDataKey" is missing`)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || s == "" {
		return "", errors.New("invalid .meta: encryptedDataKey must be a non-empty string")
	}
	return s, nil
}

// ReadMeta reads <dir>/.meta.
func ReadMeta(dir string) (string, error) {
	p := filepath.Join(dir, MetaName)
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	s, err := ParseMeta(b)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return s, nil
}

// WriteMeta writes <dir>/.meta atomically.
func WriteMeta(dir, encryptedDataKey string) error {
	return atomicfile.WriteFile(filepath.Join(dir, MetaName), MarshalMeta(encryptedDataKey), 0o600)
}

// EncryptedName returns the name BigDL/Hadoop expects for an encrypted file.
func EncryptedName(name string) string { return name + Ext }

// IsEmptyPart reports whether a file is an empty partition as BigDL writes
// it: BigDLEncryptCompressor emits nothing, not even a header, when no byte
// was written, so Spark's empty partitions are 0-byte .cbc files. They
// stand for empty plaintext. Only 0 bytes: a truncated non-empty file is
// still malformed.
func IsEmptyPart(name string, size int64) bool {
	_, ok := DecryptedName(name)
	return ok && size == 0
}

// DecryptedName strips the .cbc extension; ok is false if name lacks it.
func DecryptedName(name string) (string, bool) {
	base, ok := strings.CutSuffix(name, Ext)
	return base, ok && base != "" && !strings.HasSuffix(base, "/")
}
