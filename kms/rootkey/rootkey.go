// Package rootkey holds the KMS root keyring: the only keys that wrap stored
// secrets directly.
//
// Terms (as in Vault's barrier): the keyring is a list of term keys, 1, 2,
// ...; every root-wrapped blob starts with the term that sealed it (see
// store.WithTerm), and new wraps use the current (newest) term. The store
// keeps every term's key wrapped under the unseal key, so unwrapping an old
// blob never needs a re-wrap of anything.
//
// The unseal key is what the operator holds: a key file (development, or a
// mounted Secret) or 3 of 5 Shamir shares (the service starts sealed). It
// only opens the keyring; it never wraps data.
//
//   - Rotate adds a term (same unseal key, same shares). The replica that
//     rotates uses it at once; every other replica learns it from the store
//     before its next wrap, because the store refuses to commit a blob under
//     any term but the current one (store.ErrStaleTerm) and Seal reloads the
//     keyring and wraps again.
//   - Rekey replaces the unseal key (new shares, same terms), in two steps so
//     that the new shares are safely written before the store switches.
//   - Rewrap (a background, resumable job) moves old rows to the current term.
package rootkey

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/ppml-project/ppml/internal/atomicfile"
	"github.com/ppml-project/ppml/internal/shamir"
	"github.com/ppml-project/ppml/store"
)

// Shares and threshold of the Shamir provider (BigDL's 3 of 5).
const (
	NumShares = 5
	Threshold = 3
)

const (
	checkPlaintext = "ppml root key check v1"
	checkAAD       = "ppml/root-key-check/v1"
)

func termAAD(term int) []byte    { return []byte("ppml/root-term/v1\x00" + strconv.Itoa(term)) }
func upgradeAAD(term int) []byte { return []byte("ppml/root-term-upgrade/v1\x00" + strconv.Itoa(term)) }
func unsealAAD(term int) []byte  { return []byte("ppml/unseal-key/v1\x00" + strconv.Itoa(term)) }
func rekeyAAD(id string) []byte  { return []byte("ppml/rekey-pending/v1\x00" + id) }

// Errors.
var (
	ErrSealed        = errors.New("the KMS is sealed: submit 3 of the 5 root key shares (ppml operator unseal) before using keys")
	ErrUninitialized = errors.New("the KMS has no root key yet: initialise it with ppml operator init (or GET /rootKey/rotate with the admin token) and keep the 5 shares it returns")
	ErrInitialized   = errors.New("the root key already exists: ppml operator init only creates it once. To start a new root key term (new wraps use it, the shares stay the same) run ppml operator rotate; to replace the unseal shares (same keys) run ppml operator rekey")
)

// Mode names the root key provider.
type Mode string

const (
	ModeFile   Mode = "file"
	ModeShamir Mode = "shamir"
)

type termKey struct {
	raw  []byte
	aead cipher.AEAD
}

// Keyring holds the root keyring in memory.
type Keyring struct {
	mode  Mode
	store store.KeyringStore

	mu          sync.RWMutex
	unseal      *termKey // nil while sealed
	check       []byte   // the store's check value for unseal
	terms       map[int]*termKey
	current     int
	initialized bool
	shares      map[byte][]byte

	reloadMu sync.Mutex // one reload at a time
}

func newKey(raw []byte) (*termKey, error) {
	switch len(raw) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("root key decodes to %d bytes; want 16, 24 or 32", len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &termKey{raw: append([]byte(nil), raw...), aead: aead}, nil
}

func randomKey() *termKey {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	k, _ := newKey(raw)
	return k
}

func parseKeyText(text string) (*termKey, error) {
	raw, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, errors.New("root key is not standard base64")
	}
	return newKey(raw)
}

// OpenFile loads the unseal key from path (standard base64 of 16, 24 or 32
// bytes) and opens the keyring. With create, a missing file is generated
// (mode 0600).
func OpenFile(ctx context.Context, st store.KeyringStore, path string, create bool) (kr *Keyring, created bool, err error) {
	text, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, false, err
		}
		text = []byte(base64.StdEncoding.EncodeToString(raw))
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, fmt.Errorf("creating root key file: %w", err)
		}
		if err := atomicfile.WriteFile(path, text, 0o600); err != nil {
			return nil, false, fmt.Errorf("creating root key file: %w", err)
		}
		created = true
	} else if err != nil {
		return nil, false, fmt.Errorf("reading root key file %s: %w", path, err)
	}
	uk, err := parseKeyText(strings.TrimSpace(string(text)))
	if err != nil {
		return nil, false, fmt.Errorf("root key file %s: %w", path, err)
	}
	kr = &Keyring{mode: ModeFile, store: st, terms: map[int]*termKey{}}
	if err := kr.adopt(ctx, uk, true); err != nil {
		return nil, false, fmt.Errorf("root key file %s: %w", path, err)
	}
	return kr, created, nil
}

// NewShamir returns a sealed keyring that unseals from shares.
func NewShamir(ctx context.Context, st store.KeyringStore) (*Keyring, error) {
	sk, err := st.LoadKeyring(ctx)
	if err != nil {
		return nil, err
	}
	return &Keyring{mode: ModeShamir, store: st, initialized: sk.Check != nil, shares: map[byte][]byte{}, terms: map[int]*termKey{}}, nil
}

// adopt checks uk against the store's check value and opens every term with
// it. A store without keyring gets term 1: with create a fresh store gets a
// random key; a store of before terms (a check value, no terms) gets uk
// itself, which is what its blobs are sealed under.
func (k *Keyring) adopt(ctx context.Context, uk *termKey, create bool) error {
	for attempt := 0; ; attempt++ {
		sk, err := k.store.LoadKeyring(ctx)
		if err != nil {
			return err
		}
		if sk.Check != nil {
			if pt, err := open(uk.aead, sk.Check, []byte(checkAAD)); err != nil || string(pt) != checkPlaintext {
				return errors.New("this is not the root key the store was initialised with")
			}
		}
		if sk.Current == 0 {
			if sk.Check == nil && !create {
				return ErrUninitialized
			}
			first := randomKey()
			if sk.Check != nil {
				first = uk // existing blobs (term 1 by migration) are sealed under uk
			}
			check := sk.Check
			if check == nil {
				check = seal(uk.aead, []byte(checkPlaintext), []byte(checkAAD))
			}
			t := store.RootTerm{Term: 1, ByUnseal: seal(uk.aead, first.raw, termAAD(1)), CreatedAt: time.Now().UTC()}
			wrote, err := k.store.InitKeyring(ctx, check, t, store.WithTerm(1, seal(first.aead, uk.raw, unsealAAD(1))))
			if err != nil {
				return err
			}
			if !wrote && attempt > 3 {
				return errors.New("the root keyring is being initialised concurrently; retry")
			}
			continue // read back what was committed
		}
		terms := map[int]*termKey{}
		for _, t := range sk.Terms {
			raw, err := open(uk.aead, t.ByUnseal, termAAD(t.Term))
			if err != nil {
				return fmt.Errorf("root key term %d does not open with this unseal key: %w", t.Term, err)
			}
			if terms[t.Term], err = newKey(raw); err != nil {
				return err
			}
		}
		if terms[sk.Current] == nil {
			return fmt.Errorf("the store's current root key term %d is missing", sk.Current)
		}
		k.mu.Lock()
		k.unseal, k.check, k.terms, k.current, k.initialized = uk, sk.Check, terms, sk.Current, true
		k.mu.Unlock()
		return nil
	}
}

// Reload learns terms and a new unseal key that other replicas added. It
// returns an error only when the keyring is sealed or the store fails.
func (k *Keyring) Reload(ctx context.Context) error {
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	k.mu.RLock()
	sealed := k.unseal == nil
	k.mu.RUnlock()
	if sealed {
		return k.sealedErr()
	}
	sk, err := k.store.LoadKeyring(ctx)
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, t := range sk.Terms {
		if k.terms[t.Term] != nil {
			continue
		}
		var raw []byte
		if prev := k.terms[t.Term-1]; prev != nil && t.ByPrevious != nil {
			raw, err = open(prev.aead, t.ByPrevious, upgradeAAD(t.Term))
		} else {
			raw, err = open(k.unseal.aead, t.ByUnseal, termAAD(t.Term))
		}
		if err != nil {
			return fmt.Errorf("learning root key term %d: %w", t.Term, err)
		}
		if k.terms[t.Term], err = newKey(raw); err != nil {
			return err
		}
	}
	if k.terms[sk.Current] != nil && sk.Current > k.current {
		k.current = sk.Current
	}
	if subtle.ConstantTimeCompare(sk.Check, k.check) != 1 && sk.UnsealKey != nil {
		// Rekeyed elsewhere: the new unseal key is wrapped under a term we know.
		if term, ok := store.BlobTerm(sk.UnsealKey); ok && k.terms[term] != nil {
			raw, err := open(k.terms[term].aead, sk.UnsealKey[store.TermHeaderSize:], unsealAAD(term))
			if err != nil {
				return fmt.Errorf("learning the new unseal key: %w", err)
			}
			uk, err := newKey(raw)
			if err != nil {
				return err
			}
			if pt, err := open(uk.aead, sk.Check, []byte(checkAAD)); err == nil && string(pt) == checkPlaintext {
				k.unseal, k.check = uk, sk.Check
			}
		}
	}
	return nil
}

// CheckCurrent reloads the keyring after an unwrap failed, so a caller can
// tell a row that fails its integrity check from a term it did not know.
func (k *Keyring) CheckCurrent(ctx context.Context) error { return k.Reload(ctx) }

// Mode reports the provider.
func (k *Keyring) Mode() Mode { return k.mode }

// Sealed reports whether the keyring is unavailable.
func (k *Keyring) Sealed() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.unseal == nil
}

// Initialized reports whether the store has a root key.
func (k *Keyring) Initialized() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.initialized
}

// Term reports the current term (0 while sealed).
func (k *Keyring) Term() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.unseal == nil {
		return 0
	}
	return k.current
}

// Wrap encrypts plaintext under the current term, binding aad. Code that
// stores the result should use Seal, which retries when the store moved on
// to a newer term.
func (k *Keyring) Wrap(plaintext, aad []byte) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.unseal == nil {
		return nil, k.sealedErr()
	}
	return store.WithTerm(k.current, seal(k.terms[k.current].aead, plaintext, aad)), nil
}

// Seal wraps plaintext and hands the blob to put, which stores it. When the
// store refuses the blob because another replica rotated (store.ErrStaleTerm),
// Seal reloads the keyring and wraps again: no row is ever committed under a
// term other than the store's current one.
func (k *Keyring) Seal(ctx context.Context, plaintext, aad []byte, put func(blob []byte) error) error {
	for attempt := 0; ; attempt++ {
		blob, err := k.Wrap(plaintext, aad)
		if err != nil {
			return err
		}
		err = put(blob)
		// Each retry means a rotation committed meanwhile, so the system
		// progresses; the bound only guards against a broken store.
		if !errors.Is(err, store.ErrStaleTerm) || attempt >= 100 {
			return err
		}
		if err := k.Reload(ctx); err != nil {
			return err
		}
	}
}

// Unwrap decrypts a blob made by Wrap with the same aad. A term this replica
// does not know yet is loaded from the store first.
func (k *Keyring) Unwrap(blob, aad []byte) ([]byte, error) {
	term, ok := store.BlobTerm(blob)
	if !ok {
		return nil, errors.New("wrapped blob too short")
	}
	k.mu.RLock()
	sealed, tk := k.unseal == nil, k.terms[term]
	k.mu.RUnlock()
	if sealed {
		return nil, k.sealedErr()
	}
	if tk == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := k.Reload(ctx)
		cancel()
		if err != nil {
			return nil, err
		}
		k.mu.RLock()
		tk = k.terms[term]
		k.mu.RUnlock()
		if tk == nil {
			return nil, fmt.Errorf("wrapped blob names root key term %d, which the store does not have", term)
		}
	}
	return open(tk.aead, blob[store.TermHeaderSize:], aad)
}

func (k *Keyring) sealedErr() error {
	if !k.initialized {
		return ErrUninitialized
	}
	return ErrSealed
}

// SubmitShare adds one Shamir share (index 1..5, content as upstream: the
// share bytes). With three distinct shares it reconstructs and checks the
// unseal key. A wrong combination clears the held shares and changes nothing else.
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
		if sk, err := k.store.LoadKeyring(ctx); err == nil && sk.Check != nil {
			k.mu.Lock()
			k.initialized = true
			k.mu.Unlock()
		}
	}
	k.mu.Lock()
	if k.unseal != nil {
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
	uk, err := parseKeyText(string(secret))
	if err == nil {
		err = k.adopt(ctx, uk, false)
	}
	if err != nil {
		return 0, false, fmt.Errorf("join splits failure: the shares do not reconstruct this KMS's root key; secrets may be wrong, please resend them (0/%d held)", Threshold)
	}
	return Threshold, true, nil
}

// newUnsealKey makes a Shamir unseal key: shares split its base64 text, as
// BigDL's do.
func newUnsealKey() (*termKey, []shamir.Share, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, nil, err
	}
	text := []byte(base64.StdEncoding.EncodeToString(raw))
	shares, err := shamir.Split(text, NumShares, Threshold)
	if err != nil {
		return nil, nil, err
	}
	uk, err := newKey(raw)
	return uk, shares, err
}

// Init creates the root key of an uninitialised Shamir store and returns the
// shares of its unseal key. An initialised store is refused (ErrInitialized
// names rotate and rekey).
func (k *Keyring) Init(ctx context.Context) ([]shamir.Share, error) {
	if k.mode != ModeShamir {
		return nil, errors.New("the root key comes from a file (--root-key-provider file): there is nothing to initialise; ppml operator rotate starts a new term")
	}
	sk, err := k.store.LoadKeyring(ctx)
	if err != nil {
		return nil, err
	}
	if sk.Check != nil {
		k.mu.Lock()
		k.initialized = true
		k.mu.Unlock()
		return nil, ErrInitialized
	}
	uk, shares, err := newUnsealKey()
	if err != nil {
		return nil, err
	}
	first := randomKey()
	check := seal(uk.aead, []byte(checkPlaintext), []byte(checkAAD))
	t := store.RootTerm{Term: 1, ByUnseal: seal(uk.aead, first.raw, termAAD(1)), CreatedAt: time.Now().UTC()}
	wrote, err := k.store.InitKeyring(ctx, check, t, store.WithTerm(1, seal(first.aead, uk.raw, unsealAAD(1))))
	if err != nil {
		return nil, err
	}
	if !wrote {
		k.mu.Lock()
		k.initialized = true
		k.mu.Unlock()
		return nil, fmt.Errorf("another replica initialised the root key meanwhile; unseal with its shares (%w)", ErrInitialized)
	}
	k.mu.Lock()
	k.unseal, k.check, k.terms, k.current, k.initialized = uk, check, map[int]*termKey{1: first}, 1, true
	k.shares = map[byte][]byte{}
	k.mu.Unlock()
	return shares, nil
}

// Rotate adds a new term and makes it current; the unseal key and its shares
// stay the same. Nothing is re-wrapped (see Rewrap).
func (k *Keyring) Rotate(ctx context.Context) (int, error) {
	for attempt := 0; ; attempt++ {
		k.mu.RLock()
		uk, check, cur := k.unseal, k.check, k.current
		var prev *termKey
		if uk != nil {
			prev = k.terms[cur]
		}
		k.mu.RUnlock()
		if uk == nil {
			return 0, k.sealedErr()
		}
		next := randomKey()
		t := store.RootTerm{Term: cur + 1, ByUnseal: seal(uk.aead, next.raw, termAAD(cur+1)),
			ByPrevious: seal(prev.aead, next.raw, upgradeAAD(cur+1)), CreatedAt: time.Now().UTC()}
		err := k.store.AddTerm(ctx, t, check, store.WithTerm(cur+1, seal(next.aead, uk.raw, unsealAAD(cur+1))))
		if err == nil {
			k.mu.Lock()
			if k.terms[cur+1] == nil {
				k.terms[cur+1] = next
			}
			if k.current < cur+1 {
				k.current = cur + 1
			}
			k.mu.Unlock()
			return cur + 1, nil
		}
		if !errors.Is(err, store.ErrConflict) || attempt >= 8 {
			return 0, err
		}
		// Another replica rotated or rekeyed: learn it and try again.
		if err := k.Reload(ctx); err != nil {
			return 0, err
		}
	}
}

// PrepareRekey creates a new unseal key and records it, wrapped under the
// current term, as pending. It returns the new shares; the old shares keep
// working until CommitRekey(id), which the caller sends only once the new
// shares are safely written.
func (k *Keyring) PrepareRekey(ctx context.Context) (id string, shares []shamir.Share, err error) {
	if k.mode != ModeShamir {
		return "", nil, errors.New("the unseal key is the root key file (--root-key-provider file): rekey needs --root-key-provider shamir; to rotate the data keys run ppml operator rotate")
	}
	uk, shares, err := newUnsealKey()
	if err != nil {
		return "", nil, err
	}
	id = uuid.NewString()
	for attempt := 0; ; attempt++ {
		k.mu.RLock()
		sealed, cur := k.unseal == nil, k.current
		tk := k.terms[cur]
		k.mu.RUnlock()
		if sealed {
			return "", nil, k.sealedErr()
		}
		err = k.store.PrepareRekey(ctx, store.PendingRekey{ID: id, UnsealKey: store.WithTerm(cur, seal(tk.aead, uk.raw, rekeyAAD(id)))})
		if err == nil {
			return id, shares, nil
		}
		if !errors.Is(err, store.ErrStaleTerm) || attempt >= 8 {
			return "", nil, err
		}
		if err := k.Reload(ctx); err != nil {
			return "", nil, err
		}
	}
}

// CommitRekey switches the store to the pending unseal key id: every term is
// re-wrapped under it and the old shares stop working. Committing an id
// that was already committed succeeds again (a lost answer can be retried).
func (k *Keyring) CommitRekey(ctx context.Context, id string) error {
	for attempt := 0; ; attempt++ {
		if err := k.Reload(ctx); err != nil {
			return err
		}
		sk, err := k.store.LoadKeyring(ctx)
		if err != nil {
			return err
		}
		var uk *termKey
		if sk.Pending != nil && sk.Pending.ID == id {
			term, _ := store.BlobTerm(sk.Pending.UnsealKey)
			k.mu.RLock()
			tk := k.terms[term]
			k.mu.RUnlock()
			if tk == nil {
				return fmt.Errorf("the pending rekey is wrapped under unknown term %d", term)
			}
			raw, err := open(tk.aead, sk.Pending.UnsealKey[store.TermHeaderSize:], rekeyAAD(id))
			if err != nil {
				return fmt.Errorf("the pending rekey failed its integrity check: %w", err)
			}
			if uk, err = newKey(raw); err != nil {
				return err
			}
		} else {
			uk = randomKey() // the store reports done, or a conflict; nothing is written with it
		}
		k.mu.RLock()
		byUnseal := map[int][]byte{}
		missing := 0
		for _, t := range sk.Terms {
			tk := k.terms[t.Term]
			if tk == nil {
				missing = t.Term
				break
			}
			byUnseal[t.Term] = seal(uk.aead, tk.raw, termAAD(t.Term))
		}
		curKey := k.terms[sk.Current]
		k.mu.RUnlock()
		if missing != 0 || curKey == nil {
			// A rotation elsewhere landed between our reload and our read.
			if attempt >= 8 {
				return fmt.Errorf("root key term %d is not loaded", missing)
			}
			continue
		}
		newCheck := seal(uk.aead, []byte(checkPlaintext), []byte(checkAAD))
		done, err := k.store.CommitRekey(ctx, id, sk.Check, newCheck, sk.Current, byUnseal,
			store.WithTerm(sk.Current, seal(curKey.aead, uk.raw, unsealAAD(sk.Current))))
		if err == nil {
			if !done {
				k.mu.Lock()
				if subtle.ConstantTimeCompare(k.check, sk.Check) == 1 {
					k.unseal, k.check = uk, newCheck
				}
				k.mu.Unlock()
			}
			return k.Reload(ctx)
		}
		if sk.Pending == nil || sk.Pending.ID != id {
			return fmt.Errorf("no pending rekey %s: it was never prepared, or another rekey replaced it; the old shares are still valid", id)
		}
		if !errors.Is(err, store.ErrConflict) || attempt >= 8 {
			return err
		}
	}
}

// RewrapProgress reports the re-wrap job.
type RewrapProgress struct {
	Term      int  `json:"term"`      // the term rows are moved to
	Scanned   int  `json:"scanned"`   // rows looked at
	Rewrapped int  `json:"rewrapped"` // rows moved to Term
	Done      bool `json:"done"`
}

// Rewrap moves every root-wrapped row under an older term to the current
// one, a page at a time, calling progress after each page. It can be
// stopped and run again at any time: rows already at the current term are
// skipped, and a row changed meanwhile is left alone (compare-and-swap).
func (k *Keyring) Rewrap(ctx context.Context, progress func(RewrapProgress)) (RewrapProgress, error) {
	var p RewrapProgress
	if err := k.Reload(ctx); err != nil {
		return p, err
	}
	p.Term = k.Term()
	for _, kind := range []string{"app", "key_version", "meta", "secret"} {
		after := ""
		for {
			page, err := k.store.ListRootWrapped(ctx, kind, after, 100)
			if err != nil {
				return p, err
			}
			if len(page) == 0 {
				break
			}
			for _, it := range page {
				after = it.Cursor()
				p.Scanned++
				moved, err := k.rewrapOne(ctx, it)
				if err != nil {
					return p, fmt.Errorf("re-wrapping %s %s: %w", it.Kind, it.ID, err)
				}
				if moved {
					p.Rewrapped++
				}
			}
			if progress != nil {
				progress(p)
			}
		}
	}
	p.Term, p.Done = k.Term(), true
	if progress != nil {
		progress(p)
	}
	return p, nil
}

func (k *Keyring) rewrapOne(ctx context.Context, it store.RootWrapped) (bool, error) {
	term, _ := store.BlobTerm(it.Blob)
	if term == k.Term() {
		return false, nil
	}
	aad := it.AAD()
	pt, err := k.Unwrap(it.Blob, aad)
	if err != nil {
		return false, err
	}
	moved := false
	err = k.Seal(ctx, pt, aad, func(blob []byte) error {
		var err error
		moved, err = k.store.ReplaceRootWrapped(ctx, it, blob)
		return err
	})
	return moved, err
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
