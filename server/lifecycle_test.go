package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
	"github.com/ppml-project/ppml/store"
)

func openDB(t *testing.T, inst *servertest.Instance) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	if inst.DB != "" {
		db, err = sql.Open("pgx", inst.DB)
	} else {
		db, err = sql.Open("sqlite", filepath.Join(inst.DataDir, "ppml.db"))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func q(inst *servertest.Instance, s string) string {
	if inst.DB == "" {
		return s
	}
	n := 0
	var b strings.Builder
	for _, r := range s {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func TestRotationAndTampering(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			ctx := context.Background()
			inst := servertest.Start(t, servertest.Options{Store: st})
			_, cfg := inst.Enroll(t)
			n, err := client.NewNative(cfg)
			if err != nil {
				t.Fatal(err)
			}
			k, err := n.CreateKey(ctx, client.KeyOptions{Spec: "EH_AES_GCM_256"})
			if err != nil {
				t.Fatal(err)
			}
			ct1, err := n.Encrypt(ctx, k.ID, []byte("v1 secret"), []byte("aad"))
			if err != nil {
				t.Fatal(err)
			}
			k2, err := n.KeyAction(ctx, k.ID, "rotate", nil)
			if err != nil || k2.Version != 2 {
				t.Fatalf("rotate: %+v %v", k2, err)
			}
			ct2, _ := n.Encrypt(ctx, k.ID, []byte("v2 secret"), []byte("aad"))
			if bytes.Equal(ct1[17:21], ct2[17:21]) {
				t.Fatal("new ciphertext does not carry the new version")
			}
			for want, ct := range map[string][]byte{"v1 secret": ct1, "v2 secret": ct2} {
				pt, err := n.Decrypt(ctx, k.ID, ct, []byte("aad"))
				if err != nil || string(pt) != want {
					t.Fatalf("decrypt after rotation: %q %v", pt, err)
				}
			}
			// One flipped byte anywhere in a ciphertext is rejected.
			for _, i := range []int{0, 5, 18, 25, 40, len(ct2) - 1} {
				bad := append([]byte{}, ct2...)
				bad[i] ^= 1
				if _, err := n.Decrypt(ctx, k.ID, bad, []byte("aad")); err == nil {
					t.Fatalf("flipped byte %d accepted", i)
				} else if ae, ok := err.(*client.APIError); !ok || ae.Status != 400 {
					t.Fatalf("flipped byte %d: %v, want a 400", i, err)
				}
			}
			// Asymmetric keys do not rotate.
			ec, _ := n.CreateKey(ctx, client.KeyOptions{Spec: "EH_EC_P256"})
			if _, err := n.KeyAction(ctx, ec.ID, "rotate", nil); err == nil || !strings.Contains(err.Error(), "asymmetric") {
				t.Fatalf("rotating an EC key: %v", err)
			}

			// A flipped byte in a stored key row is detected.
			db := openDB(t, inst)
			var material []byte
			if err := db.QueryRow(q(inst, `SELECT material FROM key_versions WHERE key_id = ? AND version = 2`), k.ID).Scan(&material); err != nil {
				t.Fatal(err)
			}
			flipped := append([]byte{}, material...)
			flipped[len(flipped)-3] ^= 0x80
			if _, err := db.Exec(q(inst, `UPDATE key_versions SET material = ? WHERE key_id = ? AND version = 2`), flipped, k.ID); err != nil {
				t.Fatal(err)
			}
			// The service checks rows when it loads them (it caches unwrapped
			// material), so restart it on the tampered store.
			restart := func() {
				inst.Stop()
				inst = servertest.Start(t, servertest.Options{Store: st, DataDir: inst.DataDir, DB: inst.DB})
				cfg.URL = inst.URL
				n, _ = client.NewNative(cfg)
			}
			restart()
			if _, err := n.Decrypt(ctx, k.ID, ct2, []byte("aad")); err == nil || !strings.Contains(err.Error(), "integrity") {
				t.Fatalf("tampered key row: %v", err)
			}
			// Version 1 is untouched and still decrypts.
			if _, err := n.Decrypt(ctx, k.ID, ct1, []byte("aad")); err != nil {
				t.Fatalf("v1 after tampering v2: %v", err)
			}
			// A row copied from another key (swap) does not unwrap: it is bound to its key id.
			other, _ := n.CreateKey(ctx, client.KeyOptions{Spec: "EH_AES_GCM_256"})
			var otherMaterial []byte
			db.QueryRow(q(inst, `SELECT material FROM key_versions WHERE key_id = ? AND version = 1`), other.ID).Scan(&otherMaterial)
			db.Exec(q(inst, `UPDATE key_versions SET material = ? WHERE key_id = ? AND version = 1`), otherMaterial, k.ID)
			restart()
			if _, err := n.Decrypt(ctx, k.ID, ct1, []byte("aad")); err == nil || !strings.Contains(err.Error(), "integrity") {
				t.Fatalf("swapped key row: %v", err)
			}
			// Changing a key's owner in the database does not hand it over.
			_, cfgB := inst.Enroll(t)
			nb, _ := client.NewNative(cfgB)
			ct3, _ := n.Encrypt(ctx, other.ID, []byte("x"), nil)
			db.Exec(q(inst, `UPDATE keys SET owner = ? WHERE key_id = ?`), cfgB.AppID, other.ID)
			if _, err := nb.Decrypt(ctx, other.ID, ct3, nil); err == nil || !strings.Contains(err.Error(), "integrity") {
				t.Fatalf("key moved to another owner in the database: %v", err)
			}
		})
	}
}

func TestScheduledDeletion(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			ctx := context.Background()
			clock := &servertest.Clock{}
			inst := servertest.Start(t, servertest.Options{Store: st, Clock: clock})
			_, cfg := inst.Enroll(t)
			n, _ := client.NewNative(cfg)
			k, _ := n.CreateKey(ctx, client.KeyOptions{Spec: "EH_AES_GCM_256"})
			ct, _ := n.Encrypt(ctx, k.ID, []byte("keep me"), nil)
			if _, err := n.KeyAction(ctx, k.ID, "schedule-deletion", map[string]int{"days": 0}); err != nil {
				t.Fatal(err) // 0 means the server default (7 days)
			}
			kd, _ := n.KeyAction(ctx, k.ID, "cancel-deletion", nil)
			if kd.State != "Disabled" {
				t.Fatalf("after cancel: state %s, want Disabled", kd.State)
			}
			if _, err := n.KeyAction(ctx, k.ID, "enable", nil); err != nil {
				t.Fatal(err)
			}
			if pt, err := n.Decrypt(ctx, k.ID, ct, nil); err != nil || string(pt) != "keep me" {
				t.Fatalf("decrypt after cancelled deletion: %v", err)
			}
			pending, err := n.KeyAction(ctx, k.ID, "schedule-deletion", map[string]int{"days": 2})
			if err != nil || pending.State != "PendingDeletion" {
				t.Fatalf("schedule: %+v %v", pending, err)
			}
			if _, err := n.Decrypt(ctx, k.ID, ct, nil); err == nil || !strings.Contains(err.Error(), "scheduled for deletion") {
				t.Fatalf("decrypt while pending: %v", err)
			}
			if _, err := n.KeyAction(ctx, k.ID, "schedule-deletion", map[string]int{"days": -1}); err == nil {
				t.Fatal("negative window accepted")
			}
			// Nothing happens before the date, even if the sweeper runs.
			clock.Advance(47 * time.Hour)
			if ids, _ := inst.Server.Service().DestroyDueKeys(ctx); len(ids) != 0 {
				t.Fatalf("destroyed %v before the date", ids)
			}
			clock.Advance(2 * time.Hour)
			if _, err := n.Decrypt(ctx, k.ID, ct, nil); err == nil || !strings.Contains(err.Error(), "no key") {
				t.Fatalf("decrypt after the date: %v", err)
			}
			ids, err := inst.Server.Service().DestroyDueKeys(ctx)
			if err != nil || len(ids) != 1 || ids[0] != k.ID {
				t.Fatalf("destroy: %v %v", ids, err)
			}
			var count int
			openDB(t, inst).QueryRow(q(inst, `SELECT COUNT(*) FROM key_versions WHERE key_id = ?`), k.ID).Scan(&count)
			if count != 0 {
				t.Fatalf("%d key versions remain after destruction", count)
			}
			if _, err := n.KeyAction(ctx, k.ID, "cancel-deletion", nil); err == nil {
				t.Fatal("cancel after destruction succeeded")
			}
		})
	}
}

func shamirConfig(c *server.Config) { c.RootKeyProvider = "shamir" }

func TestSealAndUnseal(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			ctx := context.Background()
			inst := servertest.Start(t, servertest.Options{Store: st, Modify: shamirConfig})
			adm := inst.Config()
			httpc, _ := client.HTTPClient(inst.CAFile, 0)

			// Uninitialised: every key request gets a clear sealed error; not ready.
			if _, _, err := mustEHSM(t, adm).Enroll(ctx); err == nil || !strings.Contains(err.Error(), "no root key yet") {
				t.Fatalf("enroll before init: %v", err)
			}
			if code := get(t, httpc, inst.URL+"/readyz"); code != 503 {
				t.Fatalf("readyz while sealed = %d", code)
			}
			// Root key creation needs the admin token.
			req, _ := http.NewRequest("GET", inst.URL+"//rootKey/rotate", nil)
			if resp, err := httpc.Do(req); err != nil || resp.StatusCode != 401 {
				t.Fatalf("rotate without admin token: %v %v", resp, err)
			}
			req.Header.Set("Authorization", "Bearer "+inst.AdminToken)
			resp, err := httpc.Do(req)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET /rootKey/rotate: %v %v", resp, err)
			}
			shares := parseShares(t, readAll(t, resp))
			if len(shares) != 5 {
				t.Fatalf("%d shares", len(shares))
			}
			_, cfg := inst.Enroll(t)
			app, _ := client.NewNative(cfg)
			k, _ := app.CreateKey(ctx, client.KeyOptions{Spec: "EH_AES_GCM_256"})
			ct, _ := app.Encrypt(ctx, k.ID, []byte("sealed secret"), nil)
			ok(t, newRaw(t, inst, cfg).call("CreateSecret", `{"secretName":"pw","secretData":"kept across root rotation"}`))

			// Restart on the same state: sealed again.
			inst.Stop()
			inst2 := servertest.Start(t, servertest.Options{Store: st, DataDir: inst.DataDir, DB: inst.DB, Modify: shamirConfig})
			cfg.URL = inst2.URL
			app, _ = client.NewNative(cfg)
			if _, err := app.Decrypt(ctx, k.ID, ct, nil); err == nil || !strings.Contains(err.Error(), "sealed") {
				t.Fatalf("decrypt while sealed: %v", err)
			} else if ae := err.(*client.APIError); ae.Status != 503 {
				t.Fatalf("sealed status %d", ae.Status)
			}
			n, _ := client.NewNative(inst2.Config())
			// Three shares from another root key are refused; still sealed; nothing lost.
			wrong := fakeShares(t)
			for i, s := range wrong[:3] {
				_, sealed, err := n.Unseal(ctx, s)
				if i < 2 && (err != nil || !sealed) {
					t.Fatalf("share %d: %v", i, err)
				}
				if i == 2 && (err == nil || !strings.Contains(err.Error(), "do not reconstruct")) {
					t.Fatalf("wrong shares: %v", err)
				}
			}
			// Two good shares through the native API, the third through BigDL's route.
			for _, s := range []client.Share{shares[4], shares[1]} {
				if _, sealed, err := n.Unseal(ctx, s); err != nil || !sealed {
					t.Fatalf("unseal: %v", err)
				}
			}
			body := fmt.Sprintf("{\"index\" : %d,\"content\" : %q}\n", shares[2].Index, base64.StdEncoding.EncodeToString(shares[2].Content))
			req, _ = http.NewRequest("PUT", inst2.URL+"/rootKey/recover", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+inst2.AdminToken)
			resp, err = httpc.Do(req)
			if err != nil || resp.StatusCode != 200 || !strings.Contains(readAll(t, resp), "recover root key and initialize server successfully!") {
				t.Fatalf("PUT /rootKey/recover: %v", err)
			}
			if pt, err := app.Decrypt(ctx, k.ID, ct, nil); err != nil || string(pt) != "sealed secret" {
				t.Fatalf("decrypt after unseal: %q %v", pt, err)
			}
			if code := get(t, httpc, inst2.URL+"/readyz"); code != 200 {
				t.Fatalf("readyz after unseal = %d", code)
			}
			// A share while unsealed is refused and changes nothing.
			if _, _, err := n.Unseal(ctx, shares[0]); err == nil {
				t.Fatal("share accepted while unsealed")
			}
			// init again is refused and names rotate and rekey.
			if _, err := n.InitRootKey(ctx); err == nil || !strings.Contains(err.Error(), "ppml operator rotate") || !strings.Contains(err.Error(), "ppml operator rekey") {
				t.Fatalf("second init: %v", err)
			}
			// Rotation (BigDL's GET /rootKey/rotate too) keeps the shares; old data still decrypts.
			if term, err := n.RotateRootKey(ctx); err != nil || term != 2 {
				t.Fatalf("root rotation: %d %v", term, err)
			}
			req, _ = http.NewRequest("GET", inst2.URL+"/rootKey/rotate", nil)
			req.Header.Set("Authorization", "Bearer "+inst2.AdminToken)
			if resp, err := httpc.Do(req); err != nil || resp.StatusCode != 200 || !strings.Contains(readAll(t, resp), "term 3") {
				t.Fatalf("BigDL rotate after init: %v", err)
			}
			if pt, err := app.Decrypt(ctx, k.ID, ct, nil); err != nil || string(pt) != "sealed secret" {
				t.Fatalf("decrypt after root rotation: %v", err)
			}
			// Secret values stay readable across the rotation.
			if v := ok(t, newRaw(t, inst2, cfg).call("GetSecretValue", `{"secretName":"pw"}`)); v["secretData"] != "kept across root rotation" {
				t.Fatalf("secret after root rotation: %v", v)
			}
			// The re-wrap job moves secret values to the current term too.
			if _, err := n.StartRewrap(ctx); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if rs, err := n.Rewrap(ctx); err != nil || rs.Error != "" {
					t.Fatalf("rewrap: %v %+v", err, rs)
				} else if rs.Done && !rs.Running {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("rewrap did not finish")
				}
			}
			var wrapped []byte
			if err := openDB(t, inst2).QueryRow(`SELECT wrapped FROM secret_versions`).Scan(&wrapped); err != nil {
				t.Fatal(err)
			}
			if term, _ := store.BlobTerm(wrapped); term != 3 {
				t.Fatalf("secret value under term %d after rewrap, want 3", term)
			}
			if v := ok(t, newRaw(t, inst2, cfg).call("GetSecretValue", `{"secretName":"pw"}`)); v["secretData"] != "kept across root rotation" {
				t.Fatalf("secret after rewrap: %v", v)
			}
			// Rekey: new shares, committed only when asked; until then the old ones stay valid.
			id, newShares, err := n.PrepareRekey(ctx)
			if err != nil || len(newShares) != 5 {
				t.Fatalf("prepare rekey: %v", err)
			}
			if err := n.CommitRekey(ctx, id); err != nil {
				t.Fatalf("commit rekey: %v", err)
			}
			if err := n.CommitRekey(ctx, id); err != nil {
				t.Fatalf("retried commit of the same rekey: %v", err)
			}
			if err := n.CommitRekey(ctx, "not-a-rekey"); err == nil {
				t.Fatal("commit of an unknown rekey succeeded")
			}
			inst2.Stop()
			inst3 := servertest.Start(t, servertest.Options{Store: st, DataDir: inst.DataDir, DB: inst.DB, Modify: shamirConfig})
			n3, _ := client.NewNative(inst3.Config())
			for _, s := range shares[:3] { // old shares no longer work
				n3.Unseal(ctx, s)
			}
			if st, _ := n3.Status(ctx); st["sealed"] != true {
				t.Fatal("old shares unsealed after rekey")
			}
			for _, s := range newShares[2:] {
				n3.Unseal(ctx, s)
			}
			if st, _ := n3.Status(ctx); st["sealed"] != false || st["term"] != float64(3) {
				t.Fatalf("status after unseal with the new shares: %v", st)
			}
			cfg.URL = inst3.URL
			app, _ = client.NewNative(cfg)
			if pt, err := app.Decrypt(ctx, k.ID, ct, nil); err != nil || string(pt) != "sealed secret" {
				t.Fatalf("decrypt after restart with new shares: %v", err)
			}
		})
	}
}

func mustEHSM(t *testing.T, cfg client.Config) *client.EHSM {
	e, err := client.NewEHSM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func get(t *testing.T, c *http.Client, url string) int {
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func readAll(t *testing.T, resp *http.Response) string {
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

// parseShares extracts the share objects from BigDL's (not quite JSON) rotate answer.
func parseShares(t *testing.T, text string) []client.Share {
	t.Helper()
	var out []client.Share
	for _, part := range strings.Split(text, "{\"index\":")[1:] {
		var idx int
		var content string
		if _, err := fmt.Sscanf(part, "%d,\"content\":%q}", &idx, &content); err != nil {
			t.Fatalf("share %q: %v", part, err)
		}
		b, _ := base64.StdEncoding.DecodeString(content)
		out = append(out, client.Share{Index: idx, Content: b})
	}
	return out
}

func fakeShares(t *testing.T) []client.Share {
	// Shares of some other 44-character base64 root key.
	dir := t.TempDir()
	inst := servertest.Start(t, servertest.Options{DataDir: dir, Modify: shamirConfig})
	n, _ := client.NewNative(inst.Config())
	s, err := n.InitRootKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	inst.Stop()
	os.RemoveAll(dir)
	return s
}

// TestReplicaSeesRootRotation: two replicas on one store, each unsealed
// separately. A rotation on one is used by the other without resealing (it
// learns the term from the store), a rekey on one lets the other rotate
// under the new unseal key, and after a restart only the new shares unseal.
func TestReplicaSeesRootRotation(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			ctx := context.Background()
			a := servertest.Start(t, servertest.Options{Store: st, Modify: shamirConfig})
			b := servertest.Start(t, servertest.Options{Store: st, DataDir: a.DataDir, DB: a.DB, Modify: shamirConfig})
			na, _ := client.NewNative(a.Config())
			nb, _ := client.NewNative(b.Config())
			shares, err := na.InitRootKey(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range shares[:3] {
				nb.Unseal(ctx, s)
			}
			_, cfg := a.Enroll(t)
			appA, _ := client.NewNative(cfg)
			cfgB := cfg
			cfgB.URL = b.URL
			appB, _ := client.NewNative(cfgB)
			type ack struct {
				id string
				ct []byte
			}
			var acks []ack
			create := func(app *client.Native, who string) {
				k, err := app.CreateKey(ctx, client.KeyOptions{})
				if err != nil {
					t.Fatalf("%s: create: %v", who, err)
				}
				ct, err := app.Encrypt(ctx, k.ID, []byte("x"), nil)
				if err != nil {
					t.Fatalf("%s: encrypt: %v", who, err)
				}
				acks = append(acks, ack{k.ID, ct})
			}
			checkAll := func(app *client.Native, who string) {
				for _, k := range acks {
					if pt, err := app.Decrypt(ctx, k.id, k.ct, nil); err != nil || string(pt) != "x" {
						t.Fatalf("%s: key %s: %v", who, k.id, err)
					}
				}
			}
			create(appA, "a before rotation")
			if term, err := na.RotateRootKey(ctx); err != nil || term != 2 {
				t.Fatalf("rotate on a: %d %v", term, err)
			}
			create(appA, "a after its rotation")
			create(appB, "b after a's rotation")
			checkAll(appB, "b")
			id, newShares, err := nb.PrepareRekey(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := nb.CommitRekey(ctx, id); err != nil {
				t.Fatal(err)
			}
			if term, err := na.RotateRootKey(ctx); err != nil || term != 3 {
				t.Fatalf("rotate on a after b rekeyed: %d %v", term, err)
			}
			create(appB, "b after a's second rotation")
			checkAll(appA, "a")
			checkAll(appB, "b")
			b.Stop()
			b2 := servertest.Start(t, servertest.Options{Store: st, DataDir: a.DataDir, DB: a.DB, Modify: shamirConfig})
			nb2, _ := client.NewNative(b2.Config())
			for _, s := range shares[:3] {
				nb2.Unseal(ctx, s)
			}
			if st, _ := nb2.Status(ctx); st["sealed"] != true {
				t.Fatal("old shares unsealed after the rekey")
			}
			for _, s := range newShares[1:4] {
				nb2.Unseal(ctx, s)
			}
			cfgB.URL = b2.URL
			appB2, _ := client.NewNative(cfgB)
			checkAll(appB2, "b restarted")
		})
	}
}
