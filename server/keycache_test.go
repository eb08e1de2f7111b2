package server_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server/servertest"
)

// Key rows are kept in memory for eHSM requests (kms/keycache.go): a change
// made on one replica is seen by the very next request on another, and a
// row edited in the database never takes effect and is caught by its MAC.
func TestKeyCacheAcrossReplicas(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			ctx := context.Background()
			clock := &servertest.Clock{}
			a := servertest.Start(t, servertest.Options{Store: st, Clock: clock})
			b := servertest.Start(t, servertest.Options{Store: st, DataDir: a.DataDir, DB: a.DB, Clock: clock})
			_, cfgA := a.Enroll(t)
			cfgB := cfgA
			cfgB.URL, cfgB.CAFile = b.URL, b.CAFile
			eB, err := client.NewEHSM(cfgB)
			if err != nil {
				t.Fatal(err)
			}
			nA, _ := client.NewNative(cfgA)
			db := openDB(t, a)

			key, err := nA.CreateKey(ctx, client.KeyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			other, _ := nA.CreateKey(ctx, client.KeyOptions{})
			gen := func(what string) string {
				t.Helper()
				ct, err := eB.GenerateDataKeyWithoutPlaintext(ctx, key.ID, 32, "")
				if err != nil {
					t.Fatalf("%s: GenerateDataKeyWithoutPlaintext on replica b: %v", what, err)
				}
				return ct
			}
			refused := func(what, want string) {
				t.Helper()
				_, err := eB.GenerateDataKeyWithoutPlaintext(ctx, key.ID, 32, "")
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("%s: the next request on replica b answered %v, want %q", what, err, want)
				}
			}
			action := func(id, act string, body any) {
				t.Helper()
				if _, err := nA.KeyAction(ctx, id, act, body); err != nil {
					t.Fatalf("%s on replica a: %v", act, err)
				}
			}
			ct := gen("warm")
			gen("cached")

			action(key.ID, "disable", nil)
			refused("disabled on a", "disabled")
			action(key.ID, "enable", nil)
			gen("enabled again on a")

			// Rotation: the very next data key is under version 2.
			gen("before rotation")
			action(key.ID, "rotate", nil)
			raw, _ := base64.StdEncoding.DecodeString(gen("rotated on a"))
			if len(raw) < 21 || binary.BigEndian.Uint32(raw[17:21]) != 2 {
				t.Fatalf("data key after rotation on replica a is not under version 2: %x", raw)
			}
			if _, err := eB.Decrypt(ctx, key.ID, ct, ""); err != nil {
				t.Fatalf("version 1 ciphertext after rotation: %v", err)
			}

			action(key.ID, "schedule-deletion", map[string]int{"days": 7})
			refused("deletion scheduled on a", "scheduled for deletion")
			action(key.ID, "cancel-deletion", nil)
			refused("deletion cancelled on a (the key comes back disabled)", "disabled")
			action(key.ID, "enable", nil)
			gen("enabled after the cancelled deletion")

			// A policy-bound key whose owner makes data keys and an app it
			// named decrypts them (policies and decrypters are set at
			// creation; no API changes them).
			_, cfgD := a.Enroll(t)
			cfgDB := cfgD
			cfgDB.URL, cfgDB.CAFile = b.URL, b.CAFile
			dB, _ := client.NewEHSM(cfgDB)
			att, _ := client.NewAttestation(cfgA)
			pol, err := att.CreatePolicy(ctx, json.RawMessage(`{"tee":"sgx","mr_enclave":["`+strings.Repeat("ab", 32)+`"]}`))
			if err != nil {
				t.Fatal(err)
			}
			bound, err := nA.CreateKey(ctx, client.KeyOptions{ReleasePolicies: []string{pol.ID}, Decrypters: []string{cfgD.AppID}})
			if err != nil {
				t.Fatal(err)
			}
			bct, err := eB.GenerateDataKeyWithoutPlaintext(ctx, bound.ID, 32, "")
			if err != nil {
				t.Fatal(err)
			}
			ownerDecrypt := func(what, want string) {
				t.Helper()
				_, err := eB.Decrypt(ctx, bound.ID, bct, "")
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("%s: the owner's Decrypt of a bound key on replica b answered %v, want %q", what, err, want)
				}
			}
			if _, err := dB.Decrypt(ctx, bound.ID, bct, ""); err != nil {
				t.Fatalf("named decrypter on replica b: %v", err)
			}
			ownerDecrypt("bound", "bound to attestation policies")

			// The database edit unbinds the key without a MAC and without
			// advancing the generation: replica b keeps the verified row,
			// so the edit grants nothing ...
			unbind := func() {
				t.Helper()
				if _, err := db.Exec(q(a, `UPDATE keys SET policies = '[]' WHERE key_id = ?`), bound.ID); err != nil {
					t.Fatal(err)
				}
			}
			rebind := func() {
				t.Helper()
				if _, err := db.Exec(q(a, `UPDATE keys SET policies = ? WHERE key_id = ?`), `["`+pol.ID+`"]`, bound.ID); err != nil {
					t.Fatal(err)
				}
			}
			unbind()
			ownerDecrypt("policies edited in the database, row kept in memory", "bound to attestation policies")
			// ... and the row is read again, its MAC fails, within the
			// cache lifetime (1 s) ...
			clock.Advance(1100 * time.Millisecond)
			ownerDecrypt("policies edited in the database, 1.1 s later", "key_integrity")
			// ... or at once after any key write on any replica.
			rebind()
			ownerDecrypt("restored", "bound to attestation policies")
			unbind()
			ownerDecrypt("edited again, row kept in memory", "bound to attestation policies")
			action(other.ID, "disable", nil)
			ownerDecrypt("edited again, another key disabled on replica a", "key_integrity")
			rebind()
			ownerDecrypt("restored again", "bound to attestation policies")
		})
	}
}
