package rootkey_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/internal/shamir"
	"github.com/ppml-project/ppml/kms/rootkey"
	"github.com/ppml-project/ppml/store"
	"github.com/ppml-project/ppml/store/sqlstore"
)

var ctx = context.Background()

// wantErr fails unless err's message contains every part.
func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q; want it to contain %q", err, p)
		}
	}
}

func wantIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v; want %v", err, target)
	}
}

// fileReplica opens a file-mode keyring on its own connection to dsn.
func fileReplica(t *testing.T, dsn, rootFile string) (*rootkey.Keyring, *sqlstore.DB) {
	t.Helper()
	db := openStore(t, dsn)
	kr, _, err := rootkey.OpenFile(ctx, db, rootFile, true)
	if err != nil {
		t.Fatal(err)
	}
	return kr, db
}

// shamirReplica is a (re)started Shamir keyring: sealed, on its own
// connection to dsn.
func shamirReplica(t *testing.T, dsn string) (*rootkey.Keyring, *sqlstore.DB) {
	t.Helper()
	db := openStore(t, dsn)
	kr, err := rootkey.NewShamir(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	return kr, db
}

// initShamir initialises a fresh Shamir store and returns the unsealed
// keyring and the shares.
func initShamir(t *testing.T, dsn string) (*rootkey.Keyring, *sqlstore.DB, []shamir.Share) {
	t.Helper()
	kr, db := shamirReplica(t, dsn)
	shares, err := kr.Init(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return kr, db, shares
}

// submit hands shares to kr one by one and returns the last answer.
func submit(kr *rootkey.Keyring, shares ...shamir.Share) (held int, unsealed bool, err error) {
	for _, s := range shares {
		held, unsealed, err = kr.SubmitShare(ctx, int(s.X), s.Y)
		if err != nil {
			return held, unsealed, err
		}
	}
	return held, unsealed, err
}

func unseal(t *testing.T, kr *rootkey.Keyring, shares ...shamir.Share) {
	t.Helper()
	if _, unsealed, err := submit(kr, shares...); err != nil || !unsealed || kr.Sealed() {
		t.Fatalf("unseal with shares %v: unsealed %v, err %v", xs(shares), unsealed, err)
	}
}

func xs(shares []shamir.Share) []byte {
	var out []byte
	for _, s := range shares {
		out = append(out, s.X)
	}
	return out
}

func wrap(t *testing.T, kr *rootkey.Keyring, pt, aad string) []byte {
	t.Helper()
	blob, err := kr.Wrap([]byte(pt), []byte(aad))
	if err != nil {
		t.Fatal(err)
	}
	return blob
}

func wantUnwrap(t *testing.T, kr *rootkey.Keyring, blob []byte, aad, want string) {
	t.Helper()
	pt, err := kr.Unwrap(blob, []byte(aad))
	if err != nil || string(pt) != want {
		t.Fatalf("unwrap: %q, %v; want %q", pt, err, want)
	}
}

func blobTerm(t *testing.T, blob []byte) int {
	t.Helper()
	term, ok := store.BlobTerm(blob)
	if !ok {
		t.Fatalf("blob of %d bytes has no term header", len(blob))
	}
	return term
}

func TestWrapUnwrap(t *testing.T) {
	for _, kind := range storeKinds(t) {
		t.Run(kind, func(t *testing.T) {
			dsn, rootFile := newDSN(t, kind), filepath.Join(t.TempDir(), "keys", "root.key")
			db := openStore(t, dsn)
			kr, created, err := rootkey.OpenFile(ctx, db, rootFile, true)
			if err != nil || !created {
				t.Fatalf("OpenFile on a fresh store: created %v, %v", created, err)
			}
			if kr.Mode() != rootkey.ModeFile || kr.Sealed() || !kr.Initialized() || kr.Term() != 1 {
				t.Fatalf("fresh file keyring: mode %s sealed %v initialized %v term %d", kr.Mode(), kr.Sealed(), kr.Initialized(), kr.Term())
			}
			for path, want := range map[string]os.FileMode{rootFile: 0o600, filepath.Dir(rootFile): 0o700 | os.ModeDir} {
				if fi, err := os.Stat(path); err != nil || fi.Mode() != want {
					t.Fatalf("%s: mode %v (%v), want %v", path, fi.Mode(), err, want)
				}
			}

			for _, pt := range []string{"", "k", "a 32-byte key material 01234567", strings.Repeat("x", 5000)} {
				blob := wrap(t, kr, pt, "key/1")
				if blobTerm(t, blob) != 1 {
					t.Fatalf("blob term %d, want 1", blobTerm(t, blob))
				}
				// term header + nonce + ciphertext + tag: nothing else.
				if len(blob) != store.TermHeaderSize+12+len(pt)+16 {
					t.Fatalf("blob of a %d-byte plaintext is %d bytes", len(pt), len(blob))
				}
				if len(pt) >= 8 && bytes.Contains(blob, []byte(pt)) {
					t.Fatalf("blob contains the plaintext")
				}
				wantUnwrap(t, kr, blob, "key/1", pt)
				_, err := kr.Unwrap(blob, []byte("key/2"))
				wantErr(t, err, "failed authentication")
				_, err = kr.Unwrap(blob, nil)
				wantErr(t, err, "failed authentication")
			}
			a, b := wrap(t, kr, "same", "aad"), wrap(t, kr, "same", "aad")
			if bytes.Equal(a, b) {
				t.Fatal("two wraps of the same plaintext are equal (nonce reused)")
			}

			// A restart with the same file opens the same keyring.
			blob := wrap(t, kr, "survives", "aad")
			kr2, created, err := rootkey.OpenFile(ctx, openStore(t, dsn), rootFile, true)
			if err != nil || created {
				t.Fatalf("reopen: created %v, %v", created, err)
			}
			wantUnwrap(t, kr2, blob, "aad", "survives")
		})
	}
}

// Every byte of a blob is authenticated: a change in the term header names
// a term the store does not have; one in the nonce, ciphertext or tag fails
// the AEAD check. Truncated blobs are refused without a panic.
func TestTamperedBlobRefused(t *testing.T) {
	dsn, rootFile := newDSN(t, "sqlite"), filepath.Join(t.TempDir(), "root.key")
	kr, _ := fileReplica(t, dsn, rootFile)
	const aad = "ppml/test"
	blob := wrap(t, kr, "secret material", aad)
	regions := []struct {
		name     string
		from, to int
		want     string
	}{
		{"term header", 0, 4, "which the store does not have"},
		{"nonce", 4, 16, "failed authentication"},
		{"ciphertext", 16, len(blob) - 16, "failed authentication"},
		{"tag", len(blob) - 16, len(blob), "failed authentication"},
	}
	for _, r := range regions {
		for i := r.from; i < r.to; i++ {
			for _, bit := range []byte{0x01, 0x80} {
				bad := append([]byte(nil), blob...)
				bad[i] ^= bit
				pt, err := kr.Unwrap(bad, []byte(aad))
				if err == nil {
					t.Fatalf("%s byte %d ^ %#x: unwrapped to %q", r.name, i, bit, pt)
				}
				if !strings.Contains(err.Error(), r.want) {
					t.Fatalf("%s byte %d ^ %#x: %v; want %q", r.name, i, bit, err, r.want)
				}
			}
		}
	}
	for _, n := range []int{0, 3} {
		_, err := kr.Unwrap(blob[:n], []byte(aad))
		wantErr(t, err, "wrapped blob too short")
	}
	// A term header of a known term followed by less than a nonce and a tag.
	for _, n := range []int{4, 4 + 11, 4 + 12 + 15} {
		_, err := kr.Unwrap(blob[:n], []byte(aad))
		wantErr(t, err, "wrapped blob too short")
	}
	// Cut after the nonce and the first 16 bytes: as long as an empty
	// plaintext's blob, but the tag is wrong.
	_, err := kr.Unwrap(blob[:4+12+16], []byte(aad))
	wantErr(t, err, "failed authentication")
	// The body of a term-1 blob presented as term 2 (which exists after a
	// rotation) does not open under term 2's key.
	if _, err := kr.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	moved := store.WithTerm(2, blob[store.TermHeaderSize:])
	_, err = kr.Unwrap(moved, []byte(aad))
	wantErr(t, err, "failed authentication")
	wantUnwrap(t, kr, blob, aad, "secret material")
}

func TestUnknownTerm(t *testing.T) {
	dsn, rootFile := newDSN(t, "sqlite"), filepath.Join(t.TempDir(), "root.key")
	kr, _ := fileReplica(t, dsn, rootFile)
	blob := wrap(t, kr, "x", "aad")
	for _, term := range []int{0, 2, 7, 1 << 31} {
		_, err := kr.Unwrap(store.WithTerm(term, blob[store.TermHeaderSize:]), []byte("aad"))
		wantErr(t, err, "names root key term", "which the store does not have")
	}
	_, err := kr.Unwrap(store.WithTerm(7, blob[store.TermHeaderSize:]), []byte("aad"))
	wantErr(t, err, "term 7,")
	// The lookup did not invent a term.
	if kr.Term() != 1 {
		t.Fatalf("term %d after unknown-term unwraps, want 1", kr.Term())
	}
}

func TestShamirInitAndUnseal(t *testing.T) {
	for _, kind := range storeKinds(t) {
		t.Run(kind, func(t *testing.T) {
			dsn := newDSN(t, kind)
			kr, _ := shamirReplica(t, dsn)
			if kr.Mode() != rootkey.ModeShamir || !kr.Sealed() || kr.Initialized() || kr.Term() != 0 {
				t.Fatalf("fresh shamir keyring: mode %s sealed %v initialized %v term %d", kr.Mode(), kr.Sealed(), kr.Initialized(), kr.Term())
			}
			_, err := kr.Wrap([]byte("x"), nil)
			wantIs(t, err, rootkey.ErrUninitialized)
			_, _, err = kr.SubmitShare(ctx, 1, []byte("share"))
			wantIs(t, err, rootkey.ErrUninitialized)

			shares, err := kr.Init(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(shares) != rootkey.NumShares {
				t.Fatalf("%d shares, want %d", len(shares), rootkey.NumShares)
			}
			for i, s := range shares {
				if int(s.X) != i+1 || len(s.Y) == 0 {
					t.Fatalf("share %d: index %d, %d bytes", i, s.X, len(s.Y))
				}
			}
			if kr.Sealed() || !kr.Initialized() || kr.Term() != 1 {
				t.Fatalf("after init: sealed %v initialized %v term %d", kr.Sealed(), kr.Initialized(), kr.Term())
			}
			blob := wrap(t, kr, "kept", "aad")
			wantUnwrap(t, kr, blob, "aad", "kept")

			// A second init is refused as such (not as a race with another
			// replica), naming rotate and rekey.
			_, err = kr.Init(ctx)
			if err == nil || err.Error() != rootkey.ErrInitialized.Error() {
				t.Fatalf("second init: %v; want %v", err, rootkey.ErrInitialized)
			}
			wantErr(t, err, "ppml operator rotate", "ppml operator rekey")
			_, _, err = kr.SubmitShare(ctx, 1, shares[0].Y)
			wantErr(t, err, "already unsealed")

			// A restart is sealed; init is refused there too.
			kr2, _ := shamirReplica(t, dsn)
			if !kr2.Sealed() || !kr2.Initialized() || kr2.Term() != 0 {
				t.Fatalf("restarted: sealed %v initialized %v term %d", kr2.Sealed(), kr2.Initialized(), kr2.Term())
			}
			_, err = kr2.Wrap([]byte("x"), nil)
			wantIs(t, err, rootkey.ErrSealed)
			_, err = kr2.Unwrap(blob, []byte("aad"))
			wantIs(t, err, rootkey.ErrSealed)
			_, err = kr2.Init(ctx)
			if err == nil || err.Error() != rootkey.ErrInitialized.Error() {
				t.Fatalf("init after a restart: %v; want %v", err, rootkey.ErrInitialized)
			}

			// Any 3 of the 5, in any order, unseal a restart.
			for a := 0; a < 5; a++ {
				for b := a + 1; b < 5; b++ {
					for c := b + 1; c < 5; c++ {
						r, _ := shamirReplica(t, dsn)
						pick := []shamir.Share{shares[c], shares[a], shares[b]}
						if held, unsealed, err := submit(r, pick[:2]...); err != nil || unsealed || held != 2 || !r.Sealed() {
							t.Fatalf("2 shares %v: held %d unsealed %v sealed %v err %v", xs(pick[:2]), held, unsealed, r.Sealed(), err)
						}
						held, unsealed, err := submit(r, pick[2])
						if err != nil || !unsealed || held != rootkey.Threshold || r.Sealed() || r.Term() != 1 {
							t.Fatalf("shares %v: held %d unsealed %v term %d err %v", xs(pick), held, unsealed, r.Term(), err)
						}
						wantUnwrap(t, r, blob, "aad", "kept")
					}
				}
			}
		})
	}
}

func TestShamirBadShares(t *testing.T) {
	dsn := newDSN(t, "sqlite")
	kr, _, shares := initShamir(t, dsn)
	blob := wrap(t, kr, "kept", "aad")

	r, _ := shamirReplica(t, dsn)
	for _, bad := range []struct {
		index   int
		content []byte
		want    string
	}{
		{0, shares[0].Y, "share index 0 out of range 1..5"},
		{6, shares[0].Y, "share index 6 out of range 1..5"},
		{-1, shares[0].Y, "out of range"},
		{1, nil, "share content is empty"},
	} {
		_, _, err := r.SubmitShare(ctx, bad.index, bad.content)
		wantErr(t, err, bad.want)
	}
	// The same share three times is one share.
	if held, unsealed, err := submit(r, shares[0], shares[0], shares[0]); err != nil || unsealed || held != 1 {
		t.Fatalf("one share thrice: held %d unsealed %v err %v", held, unsealed, err)
	}

	// A tampered share in each position of the combination: refused, the
	// held shares are dropped, the keyring stays sealed.
	for pos := 0; pos < 3; pos++ {
		for _, at := range []int{0, len(shares[0].Y) / 2, len(shares[0].Y) - 1} {
			r, _ := shamirReplica(t, dsn)
			pick := []shamir.Share{shares[0], shares[2], shares[4]}
			y := append([]byte(nil), pick[pos].Y...)
			y[at] ^= 0x01
			pick[pos] = shamir.Share{X: pick[pos].X, Y: y}
			held, unsealed, err := submit(r, pick...)
			wantErr(t, err, "join splits failure", "please resend")
			if held != 0 || unsealed || !r.Sealed() {
				t.Fatalf("tampered share %d byte %d: held %d unsealed %v sealed %v", pos, at, held, unsealed, r.Sealed())
			}
			// Nothing is held after the failure: two good shares are not enough.
			if held, unsealed, err := submit(r, shares[1], shares[3]); err != nil || unsealed || held != 2 {
				t.Fatalf("after a failed combination: held %d unsealed %v err %v", held, unsealed, err)
			}
			unseal(t, r, shares[0])
			wantUnwrap(t, r, blob, "aad", "kept")
		}
	}
	// Shares of another KMS's root key.
	_, _, other := initShamir(t, newDSN(t, "sqlite"))
	r, _ = shamirReplica(t, dsn)
	_, unsealed, err := submit(r, other[0], other[1], other[2])
	wantErr(t, err, "do not reconstruct this KMS's root key")
	if unsealed || !r.Sealed() {
		t.Fatal("unsealed with another KMS's shares")
	}
	// A mix of the two: three shares, one foreign.
	_, _, err = submit(r, shares[0], shares[1], other[2])
	wantErr(t, err, "join splits failure")
	if !r.Sealed() {
		t.Fatal("unsealed with a foreign share")
	}
}

// A replica started before the store was initialised learns it when
// shares arrive, and refuses a second init.
func TestShamirReplicaStartedBeforeInit(t *testing.T) {
	dsn := newDSN(t, "sqlite")
	early, _ := shamirReplica(t, dsn)
	other, _ := shamirReplica(t, dsn)
	kr, _, shares := initShamir(t, dsn)
	blob := wrap(t, kr, "kept", "aad")
	if early.Initialized() {
		t.Fatal("early replica claims to be initialised before it looked")
	}
	unseal(t, early, shares[1], shares[2], shares[3])
	wantUnwrap(t, early, blob, "aad", "kept")
	_, err := other.Init(ctx)
	wantIs(t, err, rootkey.ErrInitialized)
	if !other.Initialized() || !other.Sealed() {
		t.Fatalf("after refused init: initialized %v sealed %v", other.Initialized(), other.Sealed())
	}
	_, err = other.Wrap([]byte("x"), nil)
	wantIs(t, err, rootkey.ErrSealed)
}

func TestFileModeRefusesShamirOperations(t *testing.T) {
	dsn, rootFile := newDSN(t, "sqlite"), filepath.Join(t.TempDir(), "root.key")
	kr, _ := fileReplica(t, dsn, rootFile)
	_, err := kr.Init(ctx)
	wantErr(t, err, "the root key comes from a file (--root-key-provider file): there is nothing to initialise")
	_, _, err = kr.PrepareRekey(ctx)
	wantErr(t, err, "rekey needs --root-key-provider shamir")
	_, _, err = kr.SubmitShare(ctx, 1, []byte("share"))
	wantErr(t, err, "shares are only used with --root-key-provider shamir")
	if kr.Sealed() || kr.Term() != 1 {
		t.Fatal("a refused operation changed the keyring")
	}
}

func TestOpenFileRefusals(t *testing.T) {
	dir := t.TempDir()
	dsn, rootFile := newDSN(t, "sqlite"), filepath.Join(dir, "root.key")
	kr, _ := fileReplica(t, dsn, rootFile)
	blob := wrap(t, kr, "kept", "aad")

	_, _, err := rootkey.OpenFile(ctx, openStore(t, dsn), filepath.Join(dir, "missing.key"), false)
	wantErr(t, err, "reading root key file", "missing.key")
	wantIs(t, err, os.ErrNotExist)

	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, bad := range []struct{ name, text, want string }{
		{"notb64.key", "not base64!", "root key is not standard base64"},
		{"short.key", base64.StdEncoding.EncodeToString(make([]byte, 20)), "root key decodes to 20 bytes; want 16, 24 or 32"},
		{"long.key", base64.StdEncoding.EncodeToString(make([]byte, 33)), "decodes to 33 bytes"},
		{"empty.key", "", "decodes to 0 bytes"},
		// A valid key, not the store's.
		{"other.key", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)), "this is not the root key the store was initialised with"},
		{"other16.key", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 16)), "this is not the root key the store was initialised with"},
	} {
		_, _, err := rootkey.OpenFile(ctx, openStore(t, dsn), write(bad.name, bad.text), false)
		wantErr(t, err, bad.want)
	}
	// Whitespace around the key (an editor's newline) is fine.
	text, err := os.ReadFile(rootFile)
	if err != nil {
		t.Fatal(err)
	}
	kr2, _, err := rootkey.OpenFile(ctx, openStore(t, dsn), write("nl.key", " "+string(text)+"\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	wantUnwrap(t, kr2, blob, "aad", "kept")

	// 16- and 24-byte keys make working keyrings on fresh stores.
	for _, n := range []int{16, 24} {
		p := write("k"+string(rune('0'+n/8))+".key", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(n)}, n)))
		kr, _, err := rootkey.OpenFile(ctx, openStore(t, newDSN(t, "sqlite")), p, false)
		if err != nil {
			t.Fatalf("%d-byte key: %v", n, err)
		}
		wantUnwrap(t, kr, wrap(t, kr, "x", "y"), "y", "x")
	}

	// A Shamir store does not open with some key file.
	sdsn := newDSN(t, "sqlite")
	initShamir(t, sdsn)
	_, _, err = rootkey.OpenFile(ctx, openStore(t, sdsn), rootFile, false)
	wantErr(t, err, "this is not the root key the store was initialised with")
}

// A store written before terms has a check value and no terms; its blobs
// (term 1 after the store's migration) are sealed under the root key file
// itself, which becomes term 1.
func TestStoreFromBeforeTerms(t *testing.T) {
	dir := t.TempDir()
	dsn, rootFile := filepath.Join(dir, "ppml.db"), filepath.Join(dir, "root.key")
	key := bytes.Repeat([]byte{0x5a}, 32)
	if err := os.WriteFile(rootFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	db := openStore(t, dsn)
	check := legacySeal(t, key, []byte("ppml root key check v1"), []byte("ppml/root-key-check/v1"))
	if ok, err := db.PutMetaIfAbsent(ctx, "root_key_check", check); err != nil || !ok {
		t.Fatalf("writing the old check value: %v %v", ok, err)
	}
	kr, created, err := rootkey.OpenFile(ctx, db, rootFile, false)
	if err != nil || created || kr.Term() != 1 {
		t.Fatalf("open of a store from before terms: term %d created %v %v", kr.Term(), created, err)
	}
	old := store.WithTerm(1, legacySeal(t, key, []byte("old row"), []byte("aad")))
	wantUnwrap(t, kr, old, "aad", "old row")
	// The check value is kept: another key is still refused.
	other := filepath.Join(dir, "other.key")
	if err := os.WriteFile(other, []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = rootkey.OpenFile(ctx, openStore(t, dsn), other, false)
	wantErr(t, err, "this is not the root key the store was initialised with")
	kr2, _, err := rootkey.OpenFile(ctx, openStore(t, dsn), rootFile, false)
	if err != nil {
		t.Fatal(err)
	}
	wantUnwrap(t, kr2, old, "aad", "old row")
}

func TestRotate(t *testing.T) {
	for _, kind := range storeKinds(t) {
		t.Run(kind, func(t *testing.T) {
			dsn, rootFile := newDSN(t, kind), filepath.Join(t.TempDir(), "root.key")
			kr, db := fileReplica(t, dsn, rootFile)
			replica, _ := fileReplica(t, dsn, rootFile)
			b1 := wrap(t, kr, "one", "aad")

			if term, err := kr.Rotate(ctx); err != nil || term != 2 || kr.Term() != 2 {
				t.Fatalf("rotate: term %d (keyring %d), %v", term, kr.Term(), err)
			}
			b2 := wrap(t, kr, "two", "aad")
			if blobTerm(t, b2) != 2 {
				t.Fatalf("wrap after rotate: term %d, want 2", blobTerm(t, b2))
			}
			wantUnwrap(t, kr, b1, "aad", "one")
			wantUnwrap(t, kr, b2, "aad", "two")
			// Term 2 of a term-1 blob's body: not the same key.
			_, err := kr.Unwrap(store.WithTerm(2, b1[store.TermHeaderSize:]), []byte("aad"))
			wantErr(t, err, "failed authentication")

			// The replica has not looked yet: its wraps are under term 1,
			// which the store refuses.
			if replica.Term() != 1 {
				t.Fatalf("replica term %d before reload, want 1", replica.Term())
			}
			name := store.WrappedMetaPrefix + "test"
			aad := store.WrappedMetaAAD(name)
			stale, err := replica.Wrap([]byte("row"), aad)
			if err != nil {
				t.Fatal(err)
			}
			_, err = db.PutMetaIfAbsent(ctx, name, stale)
			wantIs(t, err, store.ErrStaleTerm)
			// Seal learns the term and wraps again.
			var puts []int
			err = replica.Seal(ctx, []byte("row"), aad, func(blob []byte) error {
				puts = append(puts, blobTerm(t, blob))
				_, err := db.PutMetaIfAbsent(ctx, name, blob)
				return err
			})
			if err != nil || len(puts) != 2 || puts[0] != 1 || puts[1] != 2 || replica.Term() != 2 {
				t.Fatalf("seal on a stale replica: %v, terms put %v, replica term %d", err, puts, replica.Term())
			}
			stored, err := db.GetMeta(ctx, name)
			if err != nil || blobTerm(t, stored) != 2 {
				t.Fatalf("stored row: %x %v", stored, err)
			}
			wantUnwrap(t, kr, stored, string(aad), "row")
			// Seal returns put's other errors as they are, without retrying.
			boom := errors.New("disk full")
			calls := 0
			err = replica.Seal(ctx, []byte("x"), nil, func([]byte) error { calls++; return boom })
			if !errors.Is(err, boom) || calls != 1 {
				t.Fatalf("seal with a failing put: %v after %d calls", err, calls)
			}

			// A replica one term behind rotates to term 4 (it learns term
			// 3 from the store's conflict), and the first keyring learns
			// term 4 from an unwrap of its blob.
			replica2, _ := fileReplica(t, dsn, rootFile)
			if _, err := kr.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
			if replica2.Term() != 2 {
				t.Fatalf("replica2 term %d, want 2", replica2.Term())
			}
			if term, err := replica2.Rotate(ctx); err != nil || term != 4 || replica2.Term() != 4 {
				t.Fatalf("rotate on a replica behind by one term: %d (keyring %d), %v", term, replica2.Term(), err)
			}
			b4 := wrap(t, replica2, "four", "aad")
			if blobTerm(t, b4) != 4 {
				t.Fatalf("term %d, want 4", blobTerm(t, b4))
			}
			wantUnwrap(t, kr, b4, "aad", "four")
			if kr.Term() != 4 {
				t.Fatalf("keyring term %d after unwrapping a term-4 blob, want 4", kr.Term())
			}
			// Reload and CheckCurrent bring a replica to the current term.
			if replica.Term() != 2 {
				t.Fatalf("replica term %d, want 2", replica.Term())
			}
			if err := replica.CheckCurrent(ctx); err != nil || replica.Term() != 4 {
				t.Fatalf("CheckCurrent: term %d, %v", replica.Term(), err)
			}
			replica3, _ := fileReplica(t, dsn, rootFile)
			if _, err := kr.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := replica3.Reload(ctx); err != nil || replica3.Term() != 5 {
				t.Fatalf("Reload: term %d, %v", replica3.Term(), err)
			}
			// A restart sees every term.
			restarted, _ := fileReplica(t, dsn, rootFile)
			if restarted.Term() != 5 {
				t.Fatalf("restart: term %d, want 5", restarted.Term())
			}
			for blob, want := range map[*[]byte]string{&b1: "one", &b2: "two", &b4: "four"} {
				wantUnwrap(t, restarted, *blob, "aad", want)
			}
		})
	}
}

// legacySeal is the blob format before root key terms: nonce || AES-GCM
// ciphertext under the root key itself.
func legacySeal(t *testing.T, key, pt, aad []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, g.NonceSize())
	rand.Read(nonce)
	return g.Seal(nonce, nonce, pt, aad)
}

// A Shamir store from before terms: a check value under the unseal key its
// shares give, no terms. It unseals, and the unseal key becomes term 1.
func TestShamirStoreFromBeforeTerms(t *testing.T) {
	dsn := newDSN(t, "sqlite")
	key := bytes.Repeat([]byte{0x3c}, 32)
	shares, err := shamir.Split([]byte(base64.StdEncoding.EncodeToString(key)), rootkey.NumShares, rootkey.Threshold)
	if err != nil {
		t.Fatal(err)
	}
	db := openStore(t, dsn)
	check := legacySeal(t, key, []byte("ppml root key check v1"), []byte("ppml/root-key-check/v1"))
	if ok, err := db.PutMetaIfAbsent(ctx, "root_key_check", check); err != nil || !ok {
		t.Fatalf("writing the old check value: %v %v", ok, err)
	}
	kr, err := rootkey.NewShamir(ctx, db)
	if err != nil || !kr.Initialized() || !kr.Sealed() {
		t.Fatalf("shamir store from before terms: initialized %v sealed %v %v", kr.Initialized(), kr.Sealed(), err)
	}
	unseal(t, kr, shares[1], shares[3], shares[4])
	if kr.Term() != 1 {
		t.Fatalf("term %d, want 1", kr.Term())
	}
	wantUnwrap(t, kr, store.WithTerm(1, legacySeal(t, key, []byte("old row"), []byte("aad"))), "aad", "old row")
	r, _ := shamirReplica(t, dsn)
	unseal(t, r, shares[0], shares[1], shares[2])
	wantUnwrap(t, r, wrap(t, kr, "new row", "aad"), "aad", "new row")
}
