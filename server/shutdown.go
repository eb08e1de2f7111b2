package server

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// connStates follows the connections of the HTTP servers, so that shutdown
// can end as soon as no request is in progress: an idle HTTP/2 connection
// would otherwise hold Shutdown for Go's one-second GOAWAY grace, waiting
// for the client to hang up.
type connStates struct {
	mu    sync.Mutex
	state map[net.Conn]http.ConnState
}

// track is an http.Server ConnState hook. HTTP/2 reports a connection
// active while any of its streams is open, synchronously as the stream's
// headers are read, and idle when the last one has been answered.
func (c *connStates) track(conn net.Conn, st http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == nil {
		c.state = map[net.Conn]http.ConnState{}
	}
	if st == http.StateClosed || st == http.StateHijacked {
		delete(c.state, conn)
		return
	}
	c.state[conn] = st
}

func (c *connStates) busy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.state {
		if st == http.StateActive {
			return true
		}
	}
	return false
}

// shutdown stops the servers gracefully: no new connection or stream is
// accepted, every request in progress is answered (for up to grace), and
// then the idle connections are closed at once rather than after their
// clients leave.
func shutdown(conns *connStates, grace time.Duration, servers ...*http.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	done := make(chan error, len(servers))
	for _, hs := range servers {
		go func() { done <- hs.Shutdown(ctx) }()
	}
	// Idle twice in a row, 10 ms apart: a stream whose headers arrived just
	// before the GOAWAY went out has made its connection active by then.
	const poll = 10 * time.Millisecond
	idle := 0
	t := time.NewTicker(poll)
	defer t.Stop()
	var err error
	for pending := len(servers); pending > 0; {
		select {
		case e := <-done:
			pending--
			if err == nil {
				err = e
			}
		case <-t.C:
			if conns.busy() {
				idle = 0
			} else if idle++; idle == 2 {
				for _, hs := range servers {
					hs.Close()
				}
			}
		}
	}
	return err
}
