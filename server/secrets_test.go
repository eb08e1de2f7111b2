package server_test

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ppml-project/ppml/server/servertest"
)

// sdk sends a secret manager request as eHSM's Python SDK does
// (SecretManagementMixin: POST /ehsm?Action=..., the payload without its
// None fields, signed with the app's API key) at the server's clock.
func sdk(r *raw, clock *servertest.Clock, action string, payload map[string]any) envelopeResp {
	r.t.Helper()
	for k, v := range payload {
		if v == nil {
			delete(payload, k)
		}
	}
	b, _ := json.Marshal(payload)
	return r.post(action, r.signed(string(b), clock.Now(), nonce()))
}

func keysOf(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// TestSecretManager: every eHSM secret manager action with the fields the
// SDK sends and exactly the result fields its response classes are built
// from; versions, tenancy, a CMK, scheduled deletion and restore, forced
// deletion, and values wrapped to their identity, on both stores.
func TestSecretManager(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			clock := &servertest.Clock{}
			inst := servertest.Start(t, servertest.Options{Store: st, Clock: clock})
			_, cfgA := inst.Enroll(t)
			_, cfgB := inst.Enroll(t)
			a, b := newRaw(t, inst, cfgA), newRaw(t, inst, cfgB)

			res := sdk(a, clock, "CreateSecret", map[string]any{"secretName": "db-password", "secretData": "s3cret-v1",
				"encryptionKeyId": nil, "description": "prod database", "rotationInterval": "30d"})
			if res.Code != 200 || len(res.Result) != 0 || !strings.Contains(res.Message, "db-password create success") {
				t.Fatalf("CreateSecret: %+v", res)
			}
			expectCode(t, sdk(a, clock, "CreateSecret", map[string]any{"secretName": "db-password", "secretData": "x"}), 400, "already exists")
			expectCode(t, sdk(a, clock, "CreateSecret", map[string]any{"secretName": "r", "secretData": "x", "rotationInterval": "1h"}), 400, "less than 6 hours")
			expectCode(t, sdk(a, clock, "CreateSecret", map[string]any{"secretName": strings.Repeat("n", 65), "secretData": "x"}), 400, "secretName length error")
			expectCode(t, sdk(a, clock, "CreateSecret", map[string]any{"secretName": "big", "secretData": strings.Repeat("x", 4097)}), 400, "secretData length error")

			clock.Advance(time.Second)
			if res := sdk(a, clock, "PutSecretValue", map[string]any{"secretName": "db-password", "secretData": "s3cret-v2"}); res.Code != 200 || len(res.Result) != 0 {
				t.Fatalf("PutSecretValue: %+v", res)
			}
			v := ok(t, sdk(a, clock, "GetSecretValue", map[string]any{"secretName": "db-password", "versionId": nil}))
			if keysOf(v) != "createTime,secretData,secretName,versionId" || v["secretData"] != "s3cret-v2" || v["versionId"] != 2.0 {
				t.Fatalf("GetSecretValue newest: %v", v)
			}
			newest := v["createTime"].(float64)
			if v := ok(t, sdk(a, clock, "GetSecretValue", map[string]any{"secretName": "db-password", "versionId": 1})); v["secretData"] != "s3cret-v1" || v["versionId"] != 1.0 {
				t.Fatalf("GetSecretValue version 1: %v", v)
			}
			expectCode(t, sdk(a, clock, "GetSecretValue", map[string]any{"secretName": "db-password", "versionId": 3}), 400, "version 3 does not exist")
			expectCode(t, sdk(a, clock, "GetSecretValue", map[string]any{"secretName": "db-password", "versionId": "1"}), 400, "must be of integer type")

			vs := ok(t, sdk(a, clock, "ListSecretVersionIds", map[string]any{"secretName": "db-password"}))
			ids, _ := vs["versionIds"].([]any)
			if keysOf(vs) != "secretName,totalCount,versionIds" || vs["totalCount"] != 2.0 || len(ids) != 2 || keysOf(ids[0].(map[string]any)) != "createTime,versionId" {
				t.Fatalf("ListSecretVersionIds: %v", vs)
			}

			if res := sdk(a, clock, "UpdateSecretDesc", map[string]any{"secretName": "db-password", "description": "rotated monthly"}); res.Code != 200 || len(res.Result) != 0 {
				t.Fatalf("UpdateSecretDesc: %+v", res)
			}
			d := ok(t, sdk(a, clock, "DescribeSecret", map[string]any{"secretName": "db-password"}))
			if keysOf(d) != "createTime,description,lastRotationDate,nextRotationDate,plannedDeleteTime,rationalInterval,secretName" ||
				d["description"] != "rotated monthly" || d["rationalInterval"] != "30d" || d["plannedDeleteTime"] != 0.0 ||
				d["lastRotationDate"] != newest || d["nextRotationDate"] != newest+30*24*3600*1000 {
				t.Fatalf("DescribeSecret: %v", d)
			}

			sdk(a, clock, "CreateSecret", map[string]any{"secretName": "api-token", "secretData": "tok"})
			l := ok(t, sdk(a, clock, "ListSecrets", map[string]any{"secretName": nil}))
			list, _ := l["secretList"].([]any)
			if keysOf(l) != "secretList,totalCount" || l["totalCount"] != 2.0 || len(list) != 2 ||
				keysOf(list[0].(map[string]any)) != "createTime,description,secretName" || keysOf(list[1].(map[string]any)) != "createTime,secretName" {
				t.Fatalf("ListSecrets: %v", l)
			}
			if l := ok(t, sdk(a, clock, "ListSecrets", map[string]any{"secretName": "api-token"})); l["totalCount"] != 1.0 {
				t.Fatalf("ListSecrets by name: %v", l)
			}

			// Tenancy: B sees A's secret exactly as a name that does not exist.
			theirs := sdk(b, clock, "GetSecretValue", map[string]any{"secretName": "db-password"})
			none := sdk(b, clock, "GetSecretValue", map[string]any{"secretName": "no-such-secret"})
			if theirs.Code != 400 || theirs.Code != none.Code || strings.ReplaceAll(theirs.Message, "db-password", "X") != strings.ReplaceAll(none.Message, "no-such-secret", "X") {
				t.Fatalf("another app's secret: %+v vs %+v", theirs, none)
			}
			for _, act := range []string{"DescribeSecret", "ListSecretVersionIds", "RestoreSecret", "DeleteSecret", "UpdateSecretDesc"} {
				expectCode(t, sdk(b, clock, act, map[string]any{"secretName": "db-password"}), 400, "Cannot find secretName")
			}
			if l := ok(t, sdk(b, clock, "ListSecrets", map[string]any{})); l["totalCount"] != 0.0 {
				t.Fatalf("B lists A's secrets: %v", l)
			}
			sdk(b, clock, "CreateSecret", map[string]any{"secretName": "db-password", "secretData": "bobs"})
			if v := ok(t, sdk(a, clock, "GetSecretValue", map[string]any{"secretName": "db-password"})); v["secretData"] != "s3cret-v2" {
				t.Fatalf("A's value after B's create: %v", v)
			}

			// Under a CMK of the app: disabling the CMK makes the secret unreadable.
			cmk := str(t, ok(t, a.call("CreateKey", `{"keyspec":"EH_AES_GCM_256","origin":"EH_INTERNAL_KEY"}`)), "keyid")
			expectCode(t, sdk(b, clock, "CreateSecret", map[string]any{"secretName": "x", "secretData": "y", "encryptionKeyId": cmk}), 400, "")
			ok(t, sdk(a, clock, "CreateSecret", map[string]any{"secretName": "under-cmk", "secretData": "wrapped twice", "encryptionKeyId": cmk}))
			if v := ok(t, sdk(a, clock, "GetSecretValue", map[string]any{"secretName": "under-cmk"})); v["secretData"] != "wrapped twice" {
				t.Fatalf("CMK secret: %v", v)
			}
			ok(t, a.call("DisableKey", `{"keyid":"`+cmk+`"}`))
			if res := sdk(a, clock, "GetSecretValue", map[string]any{"secretName": "under-cmk"}); res.Code == 200 {
				t.Fatalf("secret readable with its CMK disabled: %+v", res)
			}

			// Scheduled deletion (the SDK always sends force_delete) and restore.
			res = sdk(a, clock, "DeleteSecret", map[string]any{"secretName": "api-token", "recoveryPeriod": nil, "force_delete": "false"})
			if res.Code != 200 || len(res.Result) != 0 || !strings.Contains(res.Message, "RestoreSecret") {
				t.Fatalf("DeleteSecret: %+v", res)
			}
			d = ok(t, sdk(a, clock, "DescribeSecret", map[string]any{"secretName": "api-token"}))
			if want := float64(clock.Now().Add(30 * 24 * time.Hour).UnixMilli()); d["plannedDeleteTime"].(float64) < want-5000 || d["plannedDeleteTime"].(float64) > want+5000 {
				t.Fatalf("plannedDeleteTime %v, want about %v", d["plannedDeleteTime"], want)
			}
			expectCode(t, sdk(a, clock, "GetSecretValue", map[string]any{"secretName": "api-token"}), 400, "scheduled for deletion")
			expectCode(t, sdk(a, clock, "PutSecretValue", map[string]any{"secretName": "api-token", "secretData": "n"}), 400, "scheduled for deletion")
			if res := sdk(a, clock, "RestoreSecret", map[string]any{"secretName": "api-token"}); res.Code != 200 || len(res.Result) != 0 {
				t.Fatalf("RestoreSecret: %+v", res)
			}
			if v := ok(t, sdk(a, clock, "GetSecretValue", map[string]any{"secretName": "api-token"})); v["secretData"] != "tok" {
				t.Fatalf("after restore: %v", v)
			}
			expectCode(t, sdk(a, clock, "RestoreSecret", map[string]any{"secretName": "api-token"}), 400, "not scheduled")
			// The recovery period passes: the housekeeping destroys it.
			ok(t, sdk(a, clock, "DeleteSecret", map[string]any{"secretName": "api-token", "recoveryPeriod": 1}))
			expectCode(t, sdk(a, clock, "DeleteSecret", map[string]any{"secretName": "api-token", "recoveryPeriod": 366}), 400, "")
			clock.Advance(25 * time.Hour)
			if n, err := inst.Server.Secrets().DestroyDue(context.Background()); err != nil || n != 1 {
				t.Fatalf("DestroyDue: %d %v", n, err)
			}
			expectCode(t, sdk(a, clock, "RestoreSecret", map[string]any{"secretName": "api-token"}), 400, "Cannot find secretName")
			// Forced deletion, as eHSM's server spells it and as its SDK does.
			expectCode(t, sdk(a, clock, "DeleteSecret", map[string]any{"secretName": "db-password", "forceDelete": "maybe"}), 400, "must be true or false")
			if res := sdk(a, clock, "DeleteSecret", map[string]any{"secretName": "db-password", "force_delete": "true"}); res.Code != 200 || !strings.Contains(res.Message, "delete success") {
				t.Fatalf("forced delete: %+v", res)
			}
			expectCode(t, sdk(a, clock, "DescribeSecret", map[string]any{"secretName": "db-password"}), 400, "Cannot find secretName")
			if v := ok(t, sdk(b, clock, "GetSecretValue", map[string]any{"secretName": "db-password"})); v["secretData"] != "bobs" {
				t.Fatalf("B's secret after A's forced delete: %v", v)
			}

			// At rest: no plaintext in the store, and a value moved to another
			// identity (owner, name or version) does not unwrap.
			ok(t, sdk(a, clock, "CreateSecret", map[string]any{"secretName": "moved", "secretData": "plain-marker-1"}))
			ok(t, sdk(a, clock, "PutSecretValue", map[string]any{"secretName": "moved", "secretData": "plain-marker-2"}))
			db := openDB(t, inst)
			var n int
			db.QueryRow(`SELECT COUNT(*) FROM secret_versions`).Scan(&n)
			rows, _ := db.Query(`SELECT wrapped FROM secret_versions`)
			for rows.Next() {
				var w []byte
				rows.Scan(&w)
				if strings.Contains(string(w), "plain-marker") {
					t.Fatal("a secret value is stored in plaintext")
				}
			}
			rows.Close()
			swap := q(inst, `UPDATE secret_versions SET wrapped = (SELECT wrapped FROM secret_versions WHERE owner = ? AND name = 'moved' AND version = 2) WHERE owner = ? AND name = 'moved' AND version = 1`)
			if _, err := db.Exec(swap, cfgA.AppID, cfgA.AppID); err != nil {
				t.Fatal(err)
			}
			if res := sdk(a, clock, "GetSecretValue", map[string]any{"secretName": "moved", "versionId": 1}); res.Code != 500 || !strings.Contains(res.Message, "integrity") {
				t.Fatalf("swapped version accepted: %+v", res)
			}
		})
	}
}
