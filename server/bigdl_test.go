package server_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
)

type bigdl struct {
	t    *testing.T
	http *http.Client
	base string
	tok  string
}

func (b *bigdl) do(method, target string, admin bool) (int, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+target, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	if admin {
		req.Header.Set("Authorization", "Bearer "+b.tok)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		b.t.Fatalf("%s %s: Content-Type %q, want text/plain", method, target, ct)
	}
	return resp.StatusCode, string(body)
}

// try sends a request as BigDL's client does (no Accept header, status
// ignored) and returns the transport error instead of failing.
func (b *bigdl) try(method, target string) (int, string, error) {
	req, err := http.NewRequest(method, b.base+target, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// doJSON asks for a JSON answer, as a status-aware client does.
func (b *bigdl) doJSON(method, target string) (int, string) {
	b.t.Helper()
	req, _ := http.NewRequest(method, b.base+target, nil)
	req.Header.Set("Accept", "application/json")
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestBigDLKMSRoutes(t *testing.T) {
	for _, st := range servertest.Stores(t) {
		t.Run(st, func(t *testing.T) {
			inst := servertest.Start(t, servertest.Options{Store: st})
			h, _ := client.HTTPClient(inst.CAFile, 0)
			b := &bigdl{t: t, http: h, base: inst.URL, tok: inst.AdminToken}

			if code, body := b.do("GET", "/", false); code != 200 || !strings.HasPrefix(body, "welcome to bigdl-key-management-server") {
				t.Fatalf("banner: %d %q", code, body)
			}
			// User creation needs the admin credential.
			if code, _ := b.do("POST", "//user/alice?token=s3cr3t-token", false); code != 401 {
				t.Fatalf("user creation without admin token: %d", code)
			}
			if code, body := b.do("POST", "//user/alice?token=s3cr3t-token", true); code != 200 || body != "user [alice] is created successfully!" {
				t.Fatalf("create user: %d %q", code, body)
			}
			if code, _ := b.do("POST", "/user/alice?token=other-token", true); code != 409 {
				t.Fatalf("duplicate user: %d, want 409", code)
			}
			// The Scala client's shapes: double slash, token first; the README's && joins.
			if code, body := b.do("POST", "//primaryKey/pk1?token=s3cr3t-token&user=alice", false); code != 200 || body != "generate primaryKey [pk1] successfully!" {
				t.Fatalf("primary key: %d %q", code, body)
			}
			if code, body := b.do("POST", "/dataKey/dk-0001?user=alice&&token=s3cr3t-token&&primaryKeyName=pk1", false); code != 200 || body != "dataKey [dk-0001] is generated successfully!" {
				t.Fatalf("data key: %d %q", code, body)
			}
			code, key := b.do("GET", "//dataKey/dk-0001?token=s3cr3t-token&user=alice&primaryKeyName=pk1", false)
			if raw, err := base64.StdEncoding.DecodeString(key); code != 200 || err != nil || len(raw) != 32 || len(key) != 44 {
				t.Fatalf("GET dataKey: %d %q (want exactly base64 of 32 bytes)", code, key)
			}
			if _, again := b.do("GET", "/dataKey/dk-0001?user=alice&token=s3cr3t-token&primaryKeyName=pk1", false); again != key {
				t.Fatal("data key changed between reads")
			}
			// Binding: another primary key cannot unwrap it.
			b.do("POST", "/primaryKey/pk2?user=alice&token=s3cr3t-token", false)
			if code, body, err := b.try("GET", "/dataKey/dk-0001?user=alice&token=s3cr3t-token&primaryKeyName=pk2"); err == nil {
				t.Fatalf("wrong primary key: answered %d %q, want a reset connection", code, body)
			}
			if code, body := b.doJSON("GET", "/dataKey/dk-0001?user=alice&token=s3cr3t-token&primaryKeyName=pk2"); code != 400 || !strings.Contains(body, "not generated under primary key") {
				t.Fatalf("wrong primary key (JSON client): %d %q", code, body)
			}
			// Wrong token, unknown user, missing parameters, duplicates.
			for _, c := range []struct {
				method, target string
				code           int
				msg            string
			}{
				{"GET", "/dataKey/dk-0001?user=alice&token=wrong-token&primaryKeyName=pk1", 401, "wrong user or token"},
				{"GET", "/dataKey/dk-0001?user=mallory&token=s3cr3t-token&primaryKeyName=pk1", 401, "wrong user or token"},
				{"GET", "/dataKey/dk-0001?primaryKeyName=pk1", 401, "user and token are required"},
				{"GET", "/dataKey/dk-0001?user=alice&token=s3cr3t-token", 400, "primaryKeyName is required"},
				{"GET", "/dataKey/nope?user=alice&token=s3cr3t-token&primaryKeyName=pk1", 404, "does not exist"},
				{"POST", "/dataKey/dk-0001?user=alice&token=s3cr3t-token&primaryKeyName=pk1", 409, "already exists"},
				{"POST", "/primaryKey/pk1?user=alice&token=s3cr3t-token", 409, "already exists"},
				{"POST", "/dataKey/dk-2?user=alice&token=s3cr3t-token&primaryKeyName=missing", 404, "does not exist"},
				{"DELETE", "/dataKey/dk-0001", 404, "no route"},
				{"GET", "/rootKey/rotate", 401, "admin credential"},
			} {
				if c.method == "GET" && strings.HasPrefix(c.target, "/dataKey/") {
					// Fail-closed by default: BigDL's client would take any body for the key.
					if code, body, err := b.try(c.method, c.target); err == nil {
						t.Errorf("%s %s: answered %d %q, want a reset connection", c.method, c.target, code, body)
					}
					if code, body := b.doJSON(c.method, c.target); code != c.code || !strings.Contains(body, c.msg) {
						t.Errorf("%s %s (JSON client): %d %q, want %d containing %q", c.method, c.target, code, body, c.code, c.msg)
					}
					continue
				}
				if code, body := b.do(c.method, c.target, false); code != c.code || !strings.Contains(body, c.msg) {
					t.Errorf("%s %s: %d %q, want %d containing %q", c.method, c.target, code, body, c.code, c.msg)
				}
			}
			// Tenancy: bob cannot read alice's data key by name.
			b.do("POST", "/user/bob?token=bob-token-1", true)
			b.do("POST", "/primaryKey/pk1?user=bob&token=bob-token-1", false)
			if code, _ := b.doJSON("GET", "/dataKey/dk-0001?user=bob&token=bob-token-1&primaryKeyName=pk1"); code != 404 {
				t.Fatalf("bob read alice's data key: %d", code)
			}
			// With a root key file, rotation starts a new term; the data key is the same.
			if code, body := b.do("GET", "/rootKey/rotate", true); code != 200 || !strings.Contains(body, "term 2") {
				t.Fatalf("rotate with file provider: %d %s", code, body)
			}
			if _, again := b.do("GET", "/dataKey/dk-0001?user=alice&token=s3cr3t-token&primaryKeyName=pk1", false); again != key {
				t.Fatal("data key changed after rotation")
			}
		})
	}
}

// TestBigDLDataKeyErrorBodiesAnd128: upstream's answer to a failing GET
// /dataKey (a text body) comes back only with the dangerous opt-out; JSON
// clients, which read statuses, get the error answer in either mode.
func TestBigDLDataKeyErrorBodiesAnd128(t *testing.T) {
	for _, errorBodies := range []bool{false, true} {
		inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) {
			c.BigDLDataKeyErrorBodies = errorBodies
			c.BigDLDataKeyBits = 128
			c.OpenEnrollment = true
		}})
		h, _ := client.HTTPClient(inst.CAFile, 0)
		b := &bigdl{t: t, http: h, base: inst.URL}
		if code, _ := b.do("POST", "//user/carol?token=carol-token", false); code != 200 {
			t.Fatalf("open enrollment refused: %d", code)
		}
		b.do("POST", "//primaryKey/pk?token=carol-token&user=carol", false)
		b.do("POST", "//dataKey/dk?token=carol-token&user=carol&primaryKeyName=pk", false)
		if _, key := b.do("GET", "//dataKey/dk?token=carol-token&user=carol&primaryKeyName=pk", false); len(key) != 24 {
			t.Fatalf("128-bit data key text %q, want 24 characters", key)
		}
		code, body, err := b.try("GET", "//dataKey/dk?token=WRONG-token&user=carol&primaryKeyName=pk")
		switch {
		case !errorBodies && err == nil:
			t.Fatalf("default: failing GET /dataKey answered %d %q instead of resetting the connection", code, body)
		case errorBodies && (err != nil || code != 401 || !strings.Contains(body, "wrong user or token")):
			t.Fatalf("--bigdl-datakey-error-bodies: %d %q %v, want upstream's 401 text", code, body, err)
		}
		req, _ := http.NewRequest("GET", inst.URL+"/dataKey/dk?token=WRONG-token&user=carol&primaryKeyName=pk", nil)
		req.Header.Set("Accept", "application/json")
		resp, err := h.Do(req)
		if err != nil {
			t.Fatalf("JSON client got %v, want a 401 answer", err)
		}
		jb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(string(jb), `"error"`) {
			t.Fatalf("JSON client: %d %s", resp.StatusCode, jb)
		}
	}
}
