package server_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/server/servertest"
)

// Every security-relevant field of a key row and every attestation policy
// is authenticated: an edit made in the database, not through the service,
// makes the key refuse to operate (key_integrity) instead of, say, a bound
// key decrypting with an API key alone after UPDATE keys SET policies='[]'.
func TestRowIntegrity(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			ctx := context.Background()
			inst := servertest.Start(t, servertest.Options{Store: st})
			_, cfgA := inst.Enroll(t)
			_, cfgB := inst.Enroll(t)
			_, cfgD := inst.Enroll(t)
			a, _ := client.NewNative(cfgA)
			b, _ := client.NewNative(cfgB)
			d, _ := client.NewNative(cfgD)
			att, _ := client.NewAttestation(cfgA)
			pol, err := att.CreatePolicy(ctx, json.RawMessage(`{"tee":"sgx","mr_enclave":["`+strings.Repeat("ab", 32)+`"]}`))
			if err != nil {
				t.Fatal(err)
			}
			bound, err := a.CreateKey(ctx, client.KeyOptions{ReleasePolicies: []string{pol.ID}, Decrypters: []string{cfgD.AppID}})
			if err != nil {
				t.Fatal(err)
			}
			plain, err := a.CreateKey(ctx, client.KeyOptions{Name: "plain"})
			if err != nil {
				t.Fatal(err)
			}
			ctBound, err := d.Encrypt(ctx, bound.ID, []byte("bound secret"), nil)
			if err != nil {
				t.Fatal(err)
			}
			ctPlain, _ := a.Encrypt(ctx, plain.ID, []byte("plain secret"), nil)
			if _, err := a.KeyAction(ctx, plain.ID, "disable", nil); err != nil {
				t.Fatal(err)
			}
			db := openDB(t, inst)

			decrypt := func(n *client.Native, id string, ct []byte) func() error {
				return func() error { _, err := n.Decrypt(ctx, id, ct, nil); return err }
			}
			describe := func(n *client.Native, id string) func() error {
				return func() error { _, err := n.KeyAction(ctx, id, "enable", nil); return err }
			}
			for _, tc := range []struct {
				field, key, value string
				op                func() error
				before            string // what the operation answers untampered ("" = success)
			}{
				{"policies", bound.ID, `[]`, decrypt(a, bound.ID, ctBound), "attestation_required"},
				{"decrypters", bound.ID, `["` + cfgA.AppID + `","` + cfgD.AppID + `"]`, decrypt(a, bound.ID, ctBound), "attestation_required"},
				{"state", plain.ID, "Enabled", decrypt(a, plain.ID, ctPlain), "disabled"},
				{"owner", plain.ID, cfgB.AppID, describe(b, plain.ID), "no key"},
				{"spec", plain.ID, "EH_AES_GCM_128", describe(a, plain.ID), ""},
				{"origin", plain.ID, "EH_EXTERNAL_KEY", describe(a, plain.ID), ""},
				{"usage", plain.ID, "EH_KEYUSAGE_SIGN_VERIFY", describe(a, plain.ID), ""},
				{"name", plain.ID, "renamed", describe(a, plain.ID), ""},
				{"current_version", plain.ID, "7", describe(a, plain.ID), ""},
				{"created_at", plain.ID, "1", describe(a, plain.ID), ""},
				{"deletion_at", plain.ID, "4102444800000", describe(a, plain.ID), ""},
				{"mac", plain.ID, "", describe(a, plain.ID), ""},
			} {
				t.Run(tc.field, func(t *testing.T) {
					check := func(when, want string) {
						t.Helper()
						err := tc.op()
						switch {
						case want == "" && err != nil:
							t.Fatalf("%s: %v", when, err)
						case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
							t.Fatalf("%s: %v, want %q", when, err, want)
						}
					}
					check("untampered", tc.before)
					if tc.field == "spec" || tc.field == "name" || tc.field == "current_version" || tc.field == "created_at" || tc.field == "deletion_at" || tc.field == "mac" || tc.field == "origin" || tc.field == "usage" {
						// describe enabled it; the next case wants it disabled again
						defer a.KeyAction(ctx, plain.ID, "disable", nil)
					}
					var orig any
					if err := db.QueryRow(q(inst, `SELECT `+tc.field+` FROM keys WHERE key_id = ?`), tc.key).Scan(&orig); err != nil {
						t.Fatal(err)
					}
					var v any = tc.value
					if tc.field == "mac" {
						v = nil
					}
					if _, err := db.Exec(q(inst, `UPDATE keys SET `+tc.field+` = ? WHERE key_id = ?`), v, tc.key); err != nil {
						t.Fatal(err)
					}
					check("after UPDATE keys SET "+tc.field, "key_integrity")
					if _, err := db.Exec(q(inst, `UPDATE keys SET `+tc.field+` = ? WHERE key_id = ?`), orig, tc.key); err != nil {
						t.Fatal(err)
					}
					check("restored", tc.before)
				})
			}
			// The listing leaves out a tampered key rather than show its
			// forged state.
			db.Exec(q(inst, `UPDATE keys SET state = 'Enabled' WHERE key_id = ?`), plain.ID)
			keys, err := a.ListKeys(ctx)
			if err != nil || len(keys) != 1 || keys[0].ID != bound.ID {
				t.Fatalf("list with a tampered key: %+v %v", keys, err)
			}
			db.Exec(q(inst, `UPDATE keys SET state = 'Disabled' WHERE key_id = ?`), plain.ID)

			// Policy documents: a widened policy is refused wherever it is read.
			if _, err := att.GetPolicy(ctx, pol.ID); err != nil {
				t.Fatal(err)
			}
			var doc string
			db.QueryRow(q(inst, `SELECT document FROM attest_policies WHERE policy_id = ?`), pol.ID).Scan(&doc)
			widened := strings.Replace(doc, strings.Repeat("ab", 32), strings.Repeat("cd", 32), 1)
			if widened == doc {
				t.Fatalf("document %s", doc)
			}
			db.Exec(q(inst, `UPDATE attest_policies SET document = ? WHERE policy_id = ?`), widened, pol.ID)
			if _, err := att.GetPolicy(ctx, pol.ID); err == nil || !strings.Contains(err.Error(), "policy_integrity") {
				t.Fatalf("tampered policy: %v", err)
			}
			if _, err := a.CreateKey(ctx, client.KeyOptions{ReleasePolicies: []string{pol.ID}}); err == nil || !strings.Contains(err.Error(), "integrity") {
				t.Fatalf("binding to a tampered policy: %v", err)
			}
			db.Exec(q(inst, `UPDATE attest_policies SET document = ? WHERE policy_id = ?`), doc, pol.ID)
			if _, err := att.GetPolicy(ctx, pol.ID); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A database from before row MACs: the first start authenticates the rows
// as they are, once; a row that loses its MAC afterwards is refused.
func TestRowIntegrityUpgrade(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			ctx := context.Background()
			inst := servertest.Start(t, servertest.Options{Store: st})
			_, cfg := inst.Enroll(t)
			n, _ := client.NewNative(cfg)
			att, _ := client.NewAttestation(cfg)
			k, err := n.CreateKey(ctx, client.KeyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ct, _ := n.Encrypt(ctx, k.ID, []byte("old"), nil)
			pol, err := att.CreatePolicy(ctx, json.RawMessage(`{"tee":"sgx","mr_enclave":["`+strings.Repeat("ab", 32)+`"]}`))
			if err != nil {
				t.Fatal(err)
			}
			inst.Stop()
			// Make it look like a database of the previous release.
			db := openDB(t, inst)
			for _, s := range []string{`UPDATE keys SET mac = NULL`, `UPDATE attest_policies SET mac = NULL`, `DELETE FROM meta WHERE name LIKE 'row-mac%' OR name LIKE 'wrapped/row-mac%'`} {
				if _, err := db.Exec(s); err != nil {
					t.Fatal(err)
				}
			}
			inst = servertest.Start(t, servertest.Options{Store: st, DataDir: inst.DataDir, DB: inst.DB})
			cfg.URL = inst.URL
			n, _ = client.NewNative(cfg)
			att, _ = client.NewAttestation(cfg)
			if pt, err := n.Decrypt(ctx, k.ID, ct, nil); err != nil || string(pt) != "old" {
				t.Fatalf("after the upgrade: %q %v", pt, err)
			}
			if _, err := att.GetPolicy(ctx, pol.ID); err != nil {
				t.Fatalf("policy after the upgrade: %v", err)
			}
			var nulls int
			db.QueryRow(`SELECT COUNT(*) FROM keys WHERE mac IS NULL`).Scan(&nulls)
			if nulls != 0 {
				t.Fatalf("%d key rows without MAC after the upgrade", nulls)
			}
			// Once upgraded, clearing a MAC does not make a row trusted again.
			db.Exec(`UPDATE attest_policies SET mac = NULL`)
			inst.Stop()
			inst = servertest.Start(t, servertest.Options{Store: st, DataDir: inst.DataDir, DB: inst.DB})
			cfg.URL = inst.URL
			att, _ = client.NewAttestation(cfg)
			if _, err := att.GetPolicy(ctx, pol.ID); err == nil || !strings.Contains(err.Error(), "policy_integrity") {
				t.Fatalf("policy without MAC after the upgrade: %v", err)
			}
		})
	}
}

// A policy kept for attestations after its first use: widening it in the
// database afterwards never takes effect (the enclave it would now admit is
// still refused), and reading the policy reports the edit.
func TestKeptPolicyIgnoresDatabaseEdits(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			ctx := context.Background()
			e := startAS(t, st, true, nil)
			m := measurements(false, [64]byte{})
			pol, err := e.att.CreatePolicy(ctx, json.RawMessage(fmt.Sprintf(`{"tee":"sgx","mr_enclave":[%q],"allow_simulated":true,"require_crl":false}`, hex.EncodeToString(m.MREnclave[:]))))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.attest(abi.SGX, false, nil, pol.ID); err != nil {
				t.Fatalf("the policy's own enclave: %v", err)
			}
			other := measurements(false, [64]byte{})
			other.MREnclave[0] ^= 0xff
			attestOther := func() error {
				n, err := e.att.Nonce(ctx)
				if err != nil {
					t.Fatal(err)
				}
				o := other
				o.ReportData = bind(n.Nonce, nil)
				_, err = e.att.Verify(ctx, client.VerifyRequest{Quote: e.quote(abi.SGX, o), Nonce: n.Nonce, PolicyID: pol.ID})
				return err
			}
			wantRefusal(t, attestOther(), 403, "policy_refused", "mr_enclave")
			db := openDB(t, e.inst)
			widened := fmt.Sprintf(`{"tee":"sgx","mr_enclave":[%q],"allow_simulated":true,"require_crl":false}`, hex.EncodeToString(other.MREnclave[:]))
			if _, err := db.Exec(q(e.inst, `UPDATE attest_policies SET document = ? WHERE policy_id = ?`), widened, pol.ID); err != nil {
				t.Fatal(err)
			}
			wantRefusal(t, attestOther(), 403, "policy_refused", "mr_enclave")
			if _, err := e.att.GetPolicy(ctx, pol.ID); err == nil || !strings.Contains(err.Error(), "policy_integrity") {
				t.Fatalf("reading the edited policy: %v", err)
			}
		})
	}
}
