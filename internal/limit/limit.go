// Package limit bounds slow work (argon2id hashes, RSA key generation, PCCS
// fetches) that any caller, authenticated or not, can make the server do: a
// global number of operations in flight, a smaller share of it per caller,
// and a deadline on the wait for a slot. A caller that waits past the
// deadline (or its own context) gets a retryable error with a Retry-After
// hint instead of queueing without end, so a flood from one caller neither
// exhausts memory nor takes every slot from the others.
package limit

import (
	"context"
	"sync"
	"time"

	"github.com/ppml-project/ppml/fault"
)

// Config sizes a Limiter.
type Config struct {
	// Global is the number of operations in flight at once (at least 1).
	Global int
	// PerCaller is how many of them one caller may hold (0: Global).
	PerCaller int
	// Wait bounds the wait for a slot (0: no wait beyond the context's).
	Wait time.Duration
}

// Limiter hands out slots; the zero value is not usable, use New. A nil
// *Limiter lets everything through.
type Limiter struct {
	what   string
	cfg    Config
	global chan struct{}

	mu      sync.Mutex
	callers map[string]*share
}

type share struct {
	slots chan struct{}
	users int // holders and waiters; the share is dropped at zero
}

// New returns a Limiter; what names the work in errors ("RSA key
// generations").
func New(what string, cfg Config) *Limiter {
	if cfg.Global < 1 {
		cfg.Global = 1
	}
	if cfg.PerCaller < 1 || cfg.PerCaller > cfg.Global {
		cfg.PerCaller = cfg.Global
	}
	return &Limiter{what: what, cfg: cfg, global: make(chan struct{}, cfg.Global), callers: map[string]*share{}}
}

// Config returns the limits in force.
func (l *Limiter) Config() Config { return l.cfg }

// Acquire waits for a slot for caller ("" counts as one anonymous caller)
// until the Limiter's wait or ctx ends. It first takes one of the caller's
// own share, so a caller that has used up its share waits behind itself,
// not in the global queue: its excess gets a fault.TooMany error; a full
// server a fault.Unavailable one ("busy"). Both carry RetryAfter.
func (l *Limiter) Acquire(ctx context.Context, caller string) (release func(), err error) {
	if l == nil {
		return func() {}, nil
	}
	if l.cfg.Wait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.cfg.Wait)
		defer cancel()
	}
	sh := l.join(caller)
	select {
	case sh.slots <- struct{}{}:
	default:
		select {
		case sh.slots <- struct{}{}:
		case <-ctx.Done():
			l.leave(caller, sh)
			return nil, l.tooMany()
		}
	}
	select {
	case l.global <- struct{}{}:
	default:
		select {
		case l.global <- struct{}{}:
		case <-ctx.Done():
			<-sh.slots
			l.leave(caller, sh)
			return nil, l.busy()
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-l.global
			<-sh.slots
			l.leave(caller, sh)
		})
	}, nil
}

func (l *Limiter) join(caller string) *share {
	l.mu.Lock()
	defer l.mu.Unlock()
	sh := l.callers[caller]
	if sh == nil {
		sh = &share{slots: make(chan struct{}, l.cfg.PerCaller)}
		l.callers[caller] = sh
	}
	sh.users++
	return sh
}

func (l *Limiter) leave(caller string, sh *share) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sh.users--; sh.users == 0 {
		delete(l.callers, caller)
	}
}

// retryAfter is the hint given with a refusal: the wait that just failed,
// at least a second.
func (l *Limiter) retryAfter() time.Duration {
	return max(time.Second, l.cfg.Wait)
}

func (l *Limiter) busy() error {
	e := fault.Errorf(fault.Unavailable, "busy", "the server is busy: all %d slots for %s are taken; retry in a moment", l.cfg.Global, l.what)
	e.RetryAfter = l.retryAfter()
	return e
}

func (l *Limiter) tooMany() error {
	e := fault.Errorf(fault.TooMany, "too_many_in_flight", "this caller already has %d %s in progress, the most one caller may have at once; wait for them to finish, then retry", l.cfg.PerCaller, l.what)
	e.RetryAfter = l.retryAfter()
	return e
}

// InFlight returns the number of slots taken (metrics, tests).
func (l *Limiter) InFlight() int { return len(l.global) }

type callerKey struct{}

// WithCaller returns ctx carrying the caller a Limiter deep in a call
// (the PCCS fetcher) charges; the layers in between need not know.
func WithCaller(ctx context.Context, caller string) context.Context {
	return context.WithValue(ctx, callerKey{}, caller)
}

// CallerOf returns the caller of WithCaller, or "".
func CallerOf(ctx context.Context) string {
	s, _ := ctx.Value(callerKey{}).(string)
	return s
}
