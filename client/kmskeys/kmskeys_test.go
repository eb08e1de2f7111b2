package kmskeys_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/client/kmskeys"
	"github.com/ppml-project/ppml/dataformat/files"
	"github.com/ppml-project/ppml/dataformat/keysource"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
)

// Encrypt and decrypt files with data keys from a real `ppml serve`, over
// the eHSM protocol and the BigDL KMS protocol, in every file format.
func TestKMSSourcesRoundTrip(t *testing.T) {
	ctx := context.Background()
	inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) { c.OpenEnrollment = true }})
	e, cfg := inst.Enroll(t)
	keyID, err := e.CreateKey(ctx, "EH_AES_GCM_256")
	if err != nil {
		t.Fatal(err)
	}
	ehsmSrc := &kmskeys.EHSM{Client: e, KeyID: keyID}

	bd, err := client.NewBigDLKMS(inst.URL, "alice", "alice-token", inst.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	createUser(t, inst, "alice", "alice-token")
	if err := bd.CreatePrimaryKey(ctx, "pk1"); err != nil {
		t.Fatal(err)
	}
	bigdlSrc := &kmskeys.BigDL{Client: bd, PrimaryKey: "pk1"}

	in := filepath.Join(t.TempDir(), "people.csv")
	data := []byte(strings.Repeat("name,age,job\nalice,30,Developer\n", 5000))
	os.WriteFile(in, data, 0o644)
	for name, src := range map[string]keysource.Source{"ehsm": ehsmSrc, "bigdl-kms": bigdlSrc} {
		for _, format := range []files.Format{files.FormatPPML, files.FormatBigDL} {
			t.Run(name+"/"+string(format), func(t *testing.T) {
				dir := t.TempDir()
				enc := filepath.Join(dir, "people.csv.enc")
				if format == files.FormatBigDL {
					enc = filepath.Join(dir, "people.csv.cbc") // Spark reads only *.cbc
				}
				if _, err := files.Encrypt(ctx, in, enc, files.Options{Format: format, Keys: src}); err != nil {
					t.Fatalf("encrypt: %v", err)
				}
				// Decrypt with a fresh source that knows only the KMS: the
				// key is found from the header / .meta.
				var fresh keysource.Source
				if name == "ehsm" {
					e2, _ := client.NewEHSM(cfg)
					fresh = &kmskeys.EHSM{Client: e2}
				} else {
					fresh = &kmskeys.BigDL{Client: bd, PrimaryKey: "pk1"}
				}
				out := filepath.Join(dir, "dec")
				if _, err := files.Decrypt(ctx, enc, out, files.Options{Keys: fresh}); err != nil {
					t.Fatalf("decrypt: %v", err)
				}
				got, err := readSingle(out)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("round trip differs: %v", err)
				}
			})
		}
	}
	// The wrapped key names its KMS key, so rotation does not break old files.
	dk, _ := ehsmSrc.NewDataKey(ctx, keysource.Request{})
	if kmskeys.KeyIDOf(dk.Wrapped) != keyID || dk.Ref.Version != "1" {
		t.Fatalf("wrapped key does not carry key id/version: %+v", dk.Ref)
	}
	n, _ := client.NewNative(cfg)
	if _, err := n.KeyAction(ctx, keyID, "rotate", nil); err != nil {
		t.Fatal(err)
	}
	if pt, err := ehsmSrc.OpenDataKey(ctx, dk.Wrapped, keysource.KeyRef{}); err != nil || pt != dk.Plaintext {
		t.Fatalf("old data key after rotation: %v", err)
	}
	// A BigDL data key name unknown to the KMS is a clear error, not a key.
	if _, err := bigdlSrc.OpenDataKey(ctx, "no-such-name", keysource.KeyRef{}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown BigDL data key: %v", err)
	}
}

func createUser(t *testing.T, inst *servertest.Instance, user, token string) {
	h, _ := client.HTTPClient(inst.CAFile, 0)
	resp, err := h.Post(inst.URL+"/user/"+user+"?token="+token, "text/plain", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("create BigDL user: %v %v", resp, err)
	}
	resp.Body.Close()
}

// readSingle returns the content of out, a file or a directory with one file.
func readSingle(out string) ([]byte, error) {
	st, err := os.Stat(out)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return os.ReadFile(out)
	}
	var found []byte
	err = filepath.Walk(out, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			found, err = os.ReadFile(p)
		}
		return err
	})
	return found, err
}
