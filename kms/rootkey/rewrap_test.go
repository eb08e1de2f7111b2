package rootkey_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/ppml-project/ppml/kms/rootkey"
	"github.com/ppml-project/ppml/store"
)

// Rewrap moves every root-wrapped row to the current term, keeps what it
// decrypts to, can run again (nothing left to move), and reports progress.
func TestRewrap(t *testing.T) {
	for _, kind := range storeKinds(t) {
		t.Run(kind, func(t *testing.T) {
			dsn, rootFile := newDSN(t, kind), filepath.Join(t.TempDir(), "root.key")
			kr, db := fileReplica(t, dsn, rootFile)
			const rows = 230 // more than two pages of 100
			name := func(i int) string { return fmt.Sprintf("%stest-%03d", store.WrappedMetaPrefix, i) }
			put := func(kr *rootkey.Keyring, i int) {
				t.Helper()
				err := kr.Seal(ctx, []byte(fmt.Sprint("row ", i)), store.WrappedMetaAAD(name(i)), func(blob []byte) error {
					_, err := db.PutMetaIfAbsent(ctx, name(i), blob)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < rows; i++ {
				put(kr, i)
			}
			if _, err := kr.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
			// A replica that has not seen the rotation does the re-wrap.
			other, _ := fileReplica(t, dsn, rootFile)
			if _, err := kr.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
			put(kr, rows) // already under term 3
			var seen []rootkey.RewrapProgress
			p, err := other.Rewrap(ctx, func(p rootkey.RewrapProgress) { seen = append(seen, p) })
			if err != nil || !p.Done || p.Term != 3 || p.Scanned != rows+1 || p.Rewrapped != rows {
				t.Fatalf("rewrap: %+v %v", p, err)
			}
			// One report per page (3 pages of meta rows), then the final one.
			if len(seen) < 4 || seen[len(seen)-1] != p {
				t.Fatalf("progress reports: %+v", seen)
			}
			for i, s := range seen[:len(seen)-1] {
				if s.Done || (i > 0 && s.Scanned < seen[i-1].Scanned) {
					t.Fatalf("progress report %d: %+v", i, s)
				}
			}
			for i := 0; i <= rows; i++ {
				blob, err := db.GetMeta(ctx, name(i))
				if err != nil || blobTerm(t, blob) != 3 {
					t.Fatalf("row %d after rewrap: term %d, %v", i, blobTerm(t, blob), err)
				}
				wantUnwrap(t, kr, blob, string(store.WrappedMetaAAD(name(i))), fmt.Sprint("row ", i))
			}
			if p, err := kr.Rewrap(ctx, nil); err != nil || !p.Done || p.Rewrapped != 0 || p.Scanned != rows+1 {
				t.Fatalf("second rewrap: %+v %v", p, err)
			}
		})
	}
}

// A row that does not authenticate stops the re-wrap with its name, and is
// left as it was.
func TestRewrapStopsOnDamagedRow(t *testing.T) {
	dsn, rootFile := newDSN(t, "sqlite"), filepath.Join(t.TempDir(), "root.key")
	kr, db := fileReplica(t, dsn, rootFile)
	name := store.WrappedMetaPrefix + "damaged"
	// Wrapped with the AAD of another name: authentic, but not this row's.
	blob := wrap(t, kr, "x", string(store.WrappedMetaAAD(store.WrappedMetaPrefix+"elsewhere")))
	if _, err := db.PutMetaIfAbsent(ctx, name, blob); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := kr.Rewrap(ctx, nil)
	wantErr(t, err, "re-wrapping meta "+name, "failed authentication")
	if p.Done || p.Rewrapped != 0 {
		t.Fatalf("progress after the failure: %+v", p)
	}
	if got, err := db.GetMeta(ctx, name); err != nil || string(got) != string(blob) {
		t.Fatalf("damaged row changed: %v", err)
	}
}
