// Package rootkey holds the KMS root key: the only key that wraps stored
// secrets directly. It is never stored in the clear by the service: it comes
// from a file (development, or a mounted Secret) or is reconstructed from
// Shamir shares (the service starts sealed until three of five arrive).
package rootkey

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ppml-project/ppml/internal/shamir"
	"github.com/ppml-project/ppml/store"
)

// Shares and threshold of the Shamir provider (BigDL's 3 of 5).
const (
	NumShares = 5
	Threshold = 3
)

const (
	checkMeta      = "root_key_check"
	checkPlaintext = "ppml root key check v1"
	checkAAD       = "ppml/root-key-check/v1"
)

// Errors.
var (
	ErrSealed        = errors.New("the KMS is sealed: submit 3 of the 5 root key shares (ppml operator unseal) before using keys")
	ErrUninitialized = errors.New("the KMS has no root key yet: initialise it with ppml operator init (or GET /rootKey/rotate with the admin token) and keep the 5 shares it returns")
)

// Mode names the root key provider.
type Mode string

const (
	ModeFile   Mode = "file"
	ModeShamir Mode = "shamir"
)

// Keyring holds the root key in memory and wraps and unwraps with it.
type Keyring struct {
	mode  Mode
	store store.Store

	mu          sync.RWMutex
	aead        cipher.AEAD // nil while sealed
	initialized bool
	shares      map[byte][]byte
}

// OpenFile loads the root key from path (standard base64 of 16, 24 or 32
// bytes). With create, a missing file is generated (mode 0600).
func OpenFile(ctx context.Context, st store.Store, path string, create bool) (kr *Keyring, created bool, err error) {
	text, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, false, err
		}
		text = []byte(base64.StdEncoding.EncodeToString(raw))
		if err := writeSecretFile(path, text); err != nil {
			return nil, false, fmt.Errorf("creating root key file: %w", err)
		}
		created = true
	} else if err != nil {
		return nil, false, fmt.Errorf("reading root key file %s: %w", path, err)
	}
	aead, err := parseKeyText(strings.TrimSpace(string(text)))
	if err != nil {
		return nil, false, fmt.Errorf("root key file %s: %w", path, err)
	}
	kr = &Keyring{mode: ModeFile, store: st}
	if err := kr.adopt(ctx, aead); err != nil {
		return nil, false, fmt.Errorf("root key file %s: %w", path, err)
	}
	return kr, created, nil
}

// NewShamir returns a sealed keyring that unseals from shares.
func NewShamir(ctx context.Context, st store.Store) (*Keyring, error) {
	_, err := st.GetMeta(ctx, checkMeta)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return &Keyring{mode: ModeShamir, store: st, initialized: err == nil, shares: map[byte][]byte{}}, nil
}

func parseKeyText(text string) (cipher.AEAD, error) {
	raw, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, errors.New("root key is not standard base64")
	}
	switch len(raw) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("root key decodes to %d bytes; want 16, 24 or 32", len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// adopt checks aead against the store's key check value (writing one if the
// store has none) and makes it the active root key.
func (k *Keyring) adopt(ctx context.Context, aead cipher.AEAD) error {
	check, err := k.store.GetMeta(ctx, checkMeta)
	if errors.Is(err, store.ErrNotFound) {
		if _, err := k.store.PutMetaIfAbsent(ctx, checkMeta, seal(aead, []byte(checkPlaintext), []byte(checkAAD))); err != nil {
			return err
		}
		check, err = k.store.GetMeta(ctx, checkMeta)
	}
	if err != nil {
		return err
	}
	if pt, err := open(aead, check, []byte(checkAAD)); err != nil || string(pt) != checkPlaintext {
		return errors.New("this is not the root key the store was initialised with")
	}
	k.mu.Lock()
	k.aead, k.initialized = aead, true
	k.mu.Unlock()
	return nil
}

// ErrRotatedElsewhere: another replica rotated the root key.
var ErrRotatedElsewhere = errors.New("the root key was rotated by another replica: this replica is sealed until it gets the new root key (ppml operator unseal with the new shares, or restart with the new key file)")

// CheckCurrent verifies that the loaded root key is still the store's. A
// replica whose key another replica rotated away seals itself, so that it
// reports that clearly instead of failing every unwrap as tampering.
func (k *Keyring) CheckCurrent(ctx context.Context) error {
	k.mu.RLock()
	aead := k.aead
	k.mu.RUnlock()
	if aead == nil {
		return k.sealedErr()
	}
	check, err := k.store.GetMeta(ctx, checkMeta)
	if err != nil {
		return err
	}
	if pt, err := open(aead, check, []byte(checkAAD)); err == nil && string(pt) == checkPlaintext {
		return nil
	}
	k.mu.Lock()
	if k.aead == aead {
		k.aead = nil
		if k.shares == nil {
			k.shares = map[byte][]byte{}
		}
	}
	k.mu.Unlock()
	return ErrRotatedElsewhere
}

// Mode reports the provider.
func (k *Keyring) Mode() Mode { return k.mode }

// Sealed reports whether the root key is unavailable.
func (k *Keyring) Sealed() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.aead == nil
}

// Initialized reports whether the store has a root key check value.
func (k *Keyring) Initialized() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.initialized
}

// Wrap encrypts plaintext under the root key, binding aad.
func (k *Keyring) Wrap(plaintext, aad []byte) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.aead == nil {
		return nil, k.sealedErr()
	}
	return seal(k.aead, plaintext, aad), nil
}

// Unwrap decrypts a blob made by Wrap with the same aad.
func (k *Keyring) Unwrap(blob, aad []byte) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.aead == nil {
		return nil, k.sealedErr()
	}
	return open(k.aead, blob, aad)
}

func (k *Keyring) sealedErr() error {
	if !k.initialized {
		return ErrUninitialized
	}
	return ErrSealed
}

// SubmitShare adds one Shamir share (index 1..5, content as upstream: the
// share bytes). With three distinct shares it reconstructs and checks the
// root key. A wrong combination clears the held shares and changes nothing else.
func (k *Keyring) SubmitShare(ctx context.Context, index int, content []byte) (held int, unsealed bool, err error) {
	if k.mode != ModeShamir {
		return 0, false, errors.New("the root key comes from a file; shares are only used with --root-key-provider shamir")
	}
	if index < 1 || index > NumShares {
		return 0, false, fmt.Errorf("share index %d out of range 1..%d", index, NumShares)
	}
	if len(content) == 0 {
		return 0, false, errors.New("share content is empty")
	}
	if !k.Initialized() {
		// Another replica may have initialised the store since we started.
		if _, err := k.store.GetMeta(ctx, checkMeta); err == nil {
			k.mu.Lock()
			k.initialized = true
			k.mu.Unlock()
		}
	}
	k.mu.Lock()
	if k.aead != nil {
		k.mu.Unlock()
		return 0, false, errors.New("root key exists and cannot repeat initialization: the KMS is already unsealed")
	}
	if !k.initialized {
		k.mu.Unlock()
		return 0, false, ErrUninitialized
	}
	k.shares[byte(index)] = append([]byte(nil), content...)
	if len(k.shares) < Threshold {
		n := len(k.shares)
		k.mu.Unlock()
		return n, false, nil
	}
	var ss []shamir.Share
	for x, y := range k.shares {
		ss = append(ss, shamir.Share{X: x, Y: y})
	}
	k.shares = map[byte][]byte{}
	k.mu.Unlock()

	secret, err := shamir.Combine(ss)
	if err != nil {
		return 0, false, fmt.Errorf("join splits failure: %v; secrets may be wrong, please resend them (0/%d held)", err, Threshold)
	}
	aead, err := parseKeyText(string(secret))
	if err == nil {
		err = k.adopt(ctx, aead)
	}
	if err != nil {
		return 0, false, fmt.Errorf("join splits failure: the shares do not reconstruct this KMS's root key; secrets may be wrong, please resend them (0/%d held)", Threshold)
	}
	return Threshold, true, nil
}

// Rotate creates a new root key. Uninitialised (Shamir) it initialises the
// store; otherwise every root-wrapped secret is re-wrapped under the new key
// in one transaction, so no key is ever orphaned. It returns the shares of
// the new key (Shamir mode only).
func (k *Keyring) Rotate(ctx context.Context) ([]shamir.Share, error) {
	if k.mode != ModeShamir {
		return nil, errors.New("the root key comes from a file; rotate it by re-wrapping under a new file (not supported online); use --root-key-provider shamir for online rotation")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	text := []byte(base64.StdEncoding.EncodeToString(raw))
	aead, _ := parseKeyText(string(text))
	shares, err := shamir.Split(text, NumShares, Threshold)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	check := seal(aead, []byte(checkPlaintext), []byte(checkAAD))
	if !k.initialized {
		wrote, err := k.store.PutMetaIfAbsent(ctx, checkMeta, check)
		if err != nil {
			return nil, err
		}
		if !wrote {
			k.initialized = true
			return nil, errors.New("another replica initialised the root key meanwhile; unseal with its shares")
		}
	} else {
		if k.aead == nil {
			return nil, ErrSealed
		}
		old := k.aead
		err := k.store.Rewrap(ctx, func(it store.RootWrapped) ([]byte, error) {
			aad := it.AAD()
			pt, err := open(old, it.Blob, aad)
			if err != nil {
				return nil, fmt.Errorf("re-wrapping %s %s: %w", it.Kind, it.ID, err)
			}
			return seal(aead, pt, aad), nil
		}, checkMeta, check)
		if err != nil {
			return nil, fmt.Errorf("root key rotation aborted, old key still active: %w", err)
		}
	}
	k.aead, k.initialized = aead, true
	k.shares = map[byte][]byte{}
	return shares, nil
}

func seal(aead cipher.AEAD, pt, aad []byte) []byte {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(pt)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return aead.Seal(nonce, nonce, pt, aad)
}

func open(aead cipher.AEAD, blob, aad []byte) ([]byte, error) {
	if len(blob) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("wrapped blob too short")
	}
	pt, err := aead.Open(nil, blob[:aead.NonceSize()], blob[aead.NonceSize():], aad)
	if err != nil {
		return nil, errors.New("wrapped blob failed authentication (tampered, or bound to another identity)")
	}
	return pt, nil
}

// writeSecretFile writes data to path with mode 0600 atomically.
func writeSecretFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
