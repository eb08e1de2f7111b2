package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server/servertest"
)

// A replica that loses its database answers 503 on /readyz and a retryable
// 503 store_unavailable on requests (not a 500), and recovers by itself when
// the database comes back; nothing acknowledged before is lost.
func TestReplicaLosesAndRegainsTheDatabase(t *testing.T) {
	ctx := context.Background()
	pg := servertest.StartPostgres(t)
	inst := servertest.Start(t, servertest.Options{DB: pg.URL()})
	_, cfg := inst.Enroll(t)
	app, _ := client.NewNative(cfg)
	k, err := app.CreateKey(ctx, client.KeyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := app.Encrypt(ctx, k.ID, []byte("acknowledged"), nil)
	if err != nil {
		t.Fatal(err)
	}
	httpc, _ := client.HTTPClient(inst.CAFile, 0)

	pg.Stop()
	if code := get(t, httpc, inst.URL+"/readyz"); code != 503 {
		t.Fatalf("readyz without database = %d, want 503", code)
	}
	for what, call := range map[string]func() error{
		"decrypt":    func() error { _, err := app.Decrypt(ctx, k.ID, ct, nil); return err },
		"create key": func() error { _, err := app.CreateKey(ctx, client.KeyOptions{}); return err },
	} {
		err := call()
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != 503 || ae.Code != "store_unavailable" {
			t.Fatalf("%s without database: %v, want 503 store_unavailable", what, err)
		}
	}

	pg.Start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		pt, err := app.Decrypt(ctx, k.ID, ct, nil)
		if err == nil && string(pt) == "acknowledged" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery 30 s after the database came back: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code := get(t, httpc, inst.URL+"/readyz"); code != 200 {
		t.Fatalf("readyz after recovery = %d", code)
	}
	if _, err := app.CreateKey(ctx, client.KeyOptions{}); err != nil {
		t.Fatalf("create key after recovery: %v", err)
	}
}
