package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/server/servertest"
)

// Stopping the server answers the request in progress (here one waiting
// out the auth failure delay), and then ends without waiting for clients
// that keep idle HTTP/2 connections open (Go's GOAWAY grace is one second).
func TestShutdownAnswersInFlightThenEndsAtOnce(t *testing.T) {
	const delay = 400 * time.Millisecond
	inst := servertest.Start(t, servertest.Options{Modify: func(c *server.Config) { c.Limits.AuthFailureDelay = delay }})
	_, cfg := inst.Enroll(t)
	n, _ := client.NewNative(cfg)
	if _, err := n.ListKeys(context.Background()); err != nil { // a kept-alive connection
		t.Fatal(err)
	}
	bad := cfg
	bad.APIKey = "a-wrong-key"
	nb, _ := client.NewNative(bad)
	answer := make(chan error, 1)
	go func() {
		_, err := nb.ListKeys(context.Background())
		answer <- err
	}()
	time.Sleep(delay / 4) // the refusal is waiting out its delay
	start := time.Now()
	inst.Stop()
	stopped := time.Since(start)
	var ae *client.APIError
	if err := <-answer; !errors.As(err, &ae) || ae.Status != 401 {
		t.Fatalf("the request in progress at shutdown got %v, want its 401 answer", err)
	}
	if stopped < delay/2 {
		t.Fatalf("stopped after %s, before the request in progress was answered", stopped)
	}
	// Idle: a new server with a kept-alive client stops without the grace.
	inst = servertest.Start(t, servertest.Options{})
	_, cfg = inst.Enroll(t)
	n, _ = client.NewNative(cfg)
	if _, err := n.ListKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	inst.Stop()
	if d := time.Since(start); d >= 900*time.Millisecond {
		t.Fatalf("stopping with one idle client connection took %s: the server waited out the clients' GOAWAY grace", d)
	}
}
