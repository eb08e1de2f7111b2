package keysource

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// KindPlainText is the KeyRef.Kind of PlainText.
const KindPlainText = "plaintext"

// gcmWrapPrefix marks wrapped keys made by PlainText for non-BigDL data.
const gcmWrapPrefix = "ppml-pk-gcm1:"

// PlainText is BigDL's plain-text primary key mode
// (spark.bigdl.primaryKey.<name>.plainText): the application holds an AES
// primary key itself, no KMS is involved.
//
// For BigDL data (Request.BigDL) it wraps exactly as BigDL does: the wrapped
// data key is standard base64 of AES-ECB/PKCS#5 encryption, under the decoded
// primary key, of the UTF-8 bytes of the data-key string. For other data it
// wraps with AES-GCM under the primary key (random 96-bit nonce, associated
// data naming the scheme), output "ppml-pk-gcm1:" + base64(nonce‖ct‖tag).
// OpenDataKey accepts both forms.
type PlainText struct {
	key []byte
	fp  string
}

// NewPlainText returns a source for the primary key given as base64 text
// (16, 24 or 32 bytes once decoded; surrounding whitespace is ignored).
func NewPlainText(primaryKeyB64 string) (*PlainText, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(primaryKeyB64))
	if err != nil {
		return nil, fmt.Errorf("primary key: not standard base64 text (%v); the key is given as base64 text such as the output of `openssl rand -base64 32`", err)
	}
	switch len(k) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("primary key: decodes to %d bytes; an AES key of 16, 24 or 32 bytes is required", len(k))
	}
	sum := sha256.Sum256(append([]byte("ppml primary key fingerprint\x00"), k...))
	return &PlainText{key: k, fp: "sha256:" + hex.EncodeToString(sum[:8])}, nil
}

// LoadPlainTextFile reads a primary key file (see ReadPlainTextFile).
func LoadPlainTextFile(path string) (*PlainText, error) {
	text, err := ReadPlainTextFile(path)
	if err != nil {
		return nil, err
	}
	pt, err := NewPlainText(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pt, nil
}

// ReadPlainTextFile returns the key text of a primary key file: its first
// line, without surrounding white space (BigDL's key files hold one line of
// base64 followed by a newline). BigDL's nativeaescbc files are decrypted
// with this text itself.
func ReadPlainTextFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading primary key file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line), nil
}

// Ref returns the KeyRef of this primary key (Kind "plaintext", ID a
// fingerprint of the key, safe to store).
func (p *PlainText) Ref() KeyRef { return KeyRef{Kind: KindPlainText, ID: p.fp} }

// NewDataKey implements Source.
func (p *PlainText) NewDataKey(_ context.Context, req Request) (DataKey, error) {
	n := req.Bytes
	if n == 0 {
		n = 32
	}
	if n != 16 && n != 32 {
		return DataKey{}, fmt.Errorf("data key length %d not supported; use 16 or 32 bytes", n)
	}
	raw := make([]byte, n)
	if _, err := rand.Read(raw); err != nil {
		return DataKey{}, err
	}
	dk := base64.StdEncoding.EncodeToString(raw)
	var wrapped string
	var err error
	if req.BigDL {
		wrapped, err = WrapECB(p.key, dk)
	} else {
		wrapped, err = p.wrapGCM(dk)
	}
	if err != nil {
		return DataKey{}, err
	}
	return DataKey{Plaintext: dk, Wrapped: wrapped, Ref: p.Ref()}, nil
}

// OpenDataKey implements Source.
func (p *PlainText) OpenDataKey(_ context.Context, wrapped string, ref KeyRef) (string, error) {
	if ref.Kind != "" && ref.Kind != KindPlainText {
		return "", fmt.Errorf("data key was wrapped by a %q key source (key %s), but a plain-text primary key was supplied; give the matching key source", ref.Kind, ref)
	}
	if ref.ID != "" && ref.ID != p.fp {
		return "", fmt.Errorf("%w: data was encrypted under primary key %s, but the supplied primary key is %s", ErrWrongKey, ref.ID, p.fp)
	}
	if rest, ok := strings.CutPrefix(wrapped, gcmWrapPrefix); ok {
		return p.unwrapGCM(rest)
	}
	return UnwrapECB(p.key, wrapped)
}

var gcmWrapAAD = []byte("ppml plaintext primary key wrap v1")

func (p *PlainText) wrapGCM(dk string) (string, error) {
	blk, err := aes.NewCipher(p.key)
	if err != nil {
		return "", err
	}
	g, err := cipher.NewGCMWithRandomNonce(blk)
	if err != nil {
		return "", err
	}
	return gcmWrapPrefix + base64.StdEncoding.EncodeToString(g.Seal(nil, nil, []byte(dk), gcmWrapAAD)), nil
}

func (p *PlainText) unwrapGCM(s string) (string, error) {
	ct, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("%w: wrapped data key is not base64", ErrWrongKey)
	}
	blk, err := aes.NewCipher(p.key)
	if err != nil {
		return "", err
	}
	g, err := cipher.NewGCMWithRandomNonce(blk)
	if err != nil {
		return "", err
	}
	pt, err := g.Open(nil, nil, ct, gcmWrapAAD)
	if err != nil {
		return "", fmt.Errorf("%w: the plain-text primary key does not open this data key (authentication failed)", ErrWrongKey)
	}
	return string(pt), nil
}

// WrapECB wraps a data-key string as BigDL's plain-text primary key mode
// does: base64(AES-ECB/PKCS#5(primaryKey, UTF-8 bytes of dataKey)).
// This is BigDL's (weak, unauthenticated) scheme, kept for compatibility.
func WrapECB(primaryKey []byte, dataKey string) (string, error) {
	blk, err := aes.NewCipher(primaryKey)
	if err != nil {
		return "", fmt.Errorf("primary key: %w", err)
	}
	pad := aes.BlockSize - len(dataKey)%aes.BlockSize
	buf := make([]byte, len(dataKey)+pad)
	copy(buf, dataKey)
	for i := len(dataKey); i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	for i := 0; i < len(buf); i += aes.BlockSize {
		blk.Encrypt(buf[i:i+aes.BlockSize], buf[i:i+aes.BlockSize])
	}
	return base64.StdEncoding.EncodeToString(buf), nil
}

// UnwrapECB reverses WrapECB. Because ECB carries no integrity, a wrong
// primary key is detected only through the padding and the requirement that
// the result is base64 text; errors wrap ErrWrongKey.
func UnwrapECB(primaryKey []byte, wrapped string) (string, error) {
	ct, err := base64.StdEncoding.DecodeString(strings.TrimSpace(wrapped))
	if err != nil {
		return "", fmt.Errorf("%w: encryptedDataKey %q is not base64 (expected BigDL plain-text primary key wrapping)", ErrWrongKey, short(wrapped))
	}
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return "", fmt.Errorf("%w: encryptedDataKey decodes to %d bytes, not a positive multiple of 16", ErrWrongKey, len(ct))
	}
	blk, err := aes.NewCipher(primaryKey)
	if err != nil {
		return "", fmt.Errorf("primary key: %w", err)
	}
	pt := make([]byte, len(ct))
	for i := 0; i < len(ct); i += aes.BlockSize {
		blk.Decrypt(pt[i:i+aes.BlockSize], ct[i:i+aes.BlockSize])
	}
	pad := int(pt[len(pt)-1])
	good := subtle.ConstantTimeLessOrEq(1, pad) & subtle.ConstantTimeLessOrEq(pad, aes.BlockSize)
	if good == 1 {
		for _, b := range pt[len(pt)-pad:] {
			good &= subtle.ConstantTimeByteEq(b, byte(pad))
		}
	}
	if good != 1 {
		return "", fmt.Errorf("%w: bad padding after AES-ECB unwrapping with the plain-text primary key", ErrWrongKey)
	}
	dk := string(pt[:len(pt)-pad])
	if _, err := base64.StdEncoding.DecodeString(dk); err != nil || dk == "" {
		return "", fmt.Errorf("%w: unwrapped data key is not base64 text", ErrWrongKey)
	}
	return dk, nil
}

func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Static is a Source holding one fixed data key, for tests and for callers
// that already hold the data-key string (e.g. obtained out of band).
type Static struct {
	Key DataKey
}

// NewDataKey implements Source by returning the fixed key.
func (s Static) NewDataKey(context.Context, Request) (DataKey, error) { return s.Key, nil }

// OpenDataKey implements Source: it returns the fixed key if wrapped matches.
func (s Static) OpenDataKey(_ context.Context, wrapped string, _ KeyRef) (string, error) {
	if wrapped != s.Key.Wrapped {
		return "", fmt.Errorf("%w: unknown wrapped data key %q", ErrWrongKey, short(wrapped))
	}
	return s.Key.Plaintext, nil
}
