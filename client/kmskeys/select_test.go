package kmskeys_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/client/kmskeys"
	"github.com/ppml-project/ppml/dataformat/keysource"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
)

// Select opens the one source a choice names, each against the real thing
// (a key file, ppml serve over eHSM and over BigDL KMS), and says precisely
// what is missing or too much.
func TestSelect(t *testing.T) {
	ctx := context.Background()
	inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) { c.OpenEnrollment = true }})
	e, cfg := inst.Enroll(t)
	keyID, err := e.CreateKey(ctx, "EH_AES_GCM_256")
	if err != nil {
		t.Fatal(err)
	}
	createUser(t, inst, "bob", "bob-token")
	bd, _ := client.NewBigDLKMS(inst.URL, "bob", "bob-token", inst.CAFile)
	if err := bd.CreatePrimaryKey(ctx, "pk"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile, tokenFile := filepath.Join(dir, "key.txt"), filepath.Join(dir, "token")
	k := make([]byte, 32)
	rand.Read(k)
	os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600)
	os.WriteFile(tokenFile, []byte("bob-token\n"), 0o600)
	bigdl := &kmskeys.BigDLLogin{URL: inst.URL, User: "bob", TokenFile: tokenFile, PrimaryKey: "pk", CAFile: inst.CAFile}

	for name, c := range map[string]kmskeys.Choice{
		"plaintext": {PlaintextKeyFile: keyFile, BigDL: &kmskeys.BigDLLogin{}},
		"ehsm":      {KMS: cfg, KeyID: keyID},
		"bigdl-kms": {BigDL: bigdl},
	} {
		src, err := kmskeys.Select(c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		dk, err := src.NewDataKey(ctx, keysource.Request{Bytes: 32})
		if err != nil {
			t.Fatalf("%s: new data key: %v", name, err)
		}
		if pt, err := src.OpenDataKey(ctx, dk.Wrapped, dk.Ref); err != nil || pt != dk.Plaintext {
			t.Fatalf("%s: open data key: %v", name, err)
		}
	}

	noKey := cfg
	noKey.APIKey = ""
	for _, tc := range []struct {
		c    kmskeys.Choice
		want string
	}{
		{kmskeys.Choice{PlaintextKeyFile: keyFile, KMS: cfg}, "give one key source: --primary-key-plaintext-file or --kms"},
		{kmskeys.Choice{KMS: cfg, BigDL: bigdl}, "give one key source: --primary-key-plaintext-file, --kms or --bigdl-kms"},
		{kmskeys.Choice{KMS: noKey}, "--kms needs --app-id and --api-key-file (or PPML_APP_ID / PPML_API_KEY)"},
		{kmskeys.Choice{BigDL: &kmskeys.BigDLLogin{URL: inst.URL, User: "bob"}}, "--bigdl-kms needs --bigdl-user and --bigdl-token-file"},
		{kmskeys.Choice{BigDL: &kmskeys.BigDLLogin{URL: inst.URL, User: "bob", TokenFile: filepath.Join(dir, "missing")}}, "reading --bigdl-token-file: open "},
		{kmskeys.Choice{PlaintextKeyFile: tokenFile}, tokenFile + ": "},
	} {
		if src, err := kmskeys.Select(tc.c); err == nil || src != nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
	}
	if _, err := kmskeys.Select(kmskeys.Choice{BigDL: &kmskeys.BigDLLogin{}}); !errors.Is(err, kmskeys.ErrNoSource) {
		t.Errorf("nothing chosen: %v", err)
	}
}
