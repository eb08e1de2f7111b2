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
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/internal/boundedcache"
)

// Config sizes a Limiter.
type Config struct {
	// Global is the number of operations in flight at once (at least 1).
	Global int
	// PerCaller is how many of them one caller may hold (0: Global).
	PerCaller int
	// Wait bounds the wait for a slot (0: no wait beyond the context's).
	Wait time.Duration
	// Rate, when > 0, also bounds how many operations start per second
	// (a burst of up to Global at once): a few slots of short operations
	// can still keep cores busy, a rate bounds their share of the CPU.
	Rate float64
	// PerCallerRate, when > 0, bounds how many operations one caller
	// starts per second (one at a time beyond that); callers are
	// remembered in a bounded table.
	PerCallerRate float64
}

// Or returns c with its zero fields taken from d (a zero PerCaller: d's,
// but at most c's Global).
func (c Config) Or(d Config) Config {
	if c.Global == 0 {
		c.Global = d.Global
	}
	if c.PerCaller == 0 {
		c.PerCaller = min(d.PerCaller, c.Global)
	}
	if c.Wait == 0 {
		c.Wait = d.Wait
	}
	if c.Rate == 0 {
		c.Rate = d.Rate
	}
	if c.PerCallerRate == 0 {
		c.PerCallerRate = d.PerCallerRate
	}
	return c
}

// Limiter hands out slots; the zero value is not usable, use New. A nil
// *Limiter lets everything through.
type Limiter struct {
	what   string
	cfg    Config
	global chan struct{}
	rate   *rate.Limiter // nil without Config.Rate

	mu      sync.Mutex
	callers map[string]*share
	// callerRates outlive the shares (which go when a caller has nothing
	// in flight), so that one-at-a-time callers are paced too.
	callerRates *boundedcache.Map[string, *rate.Limiter]
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
	l := &Limiter{what: what, cfg: cfg, global: make(chan struct{}, cfg.Global), callers: map[string]*share{}}
	if cfg.Rate > 0 {
		l.rate = rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Global)
	}
	if cfg.PerCallerRate > 0 {
		l.callerRates = boundedcache.New[string, *rate.Limiter](maxCallers)
	}
	return l
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
	if l.callerRates != nil {
		r := l.callerRates.GetOrCompute(caller, func() *rate.Limiter { return rate.NewLimiter(rate.Limit(l.cfg.PerCallerRate), 1) })
		if !wait(ctx, r) {
			<-sh.slots
			l.leave(caller, sh)
			return nil, l.tooMany()
		}
	}
	if l.rate != nil && !wait(ctx, l.rate) {
		<-sh.slots
		l.leave(caller, sh)
		return nil, l.busy()
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

// Sleep waits d, or less if ctx ends first: the delays that make a
// guesser or forger wait hold no goroutine past its client's hang-up.
func Sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// maxCallers bounds the table of per-caller rates.
const maxCallers = 10000

// wait waits for a token of r. rate.Limiter.Wait fails at once when no
// token comes before the deadline; the caller is refused at the deadline
// all the same, so a refusal always costs the wait (and a flood's retries
// come no faster).
func wait(ctx context.Context, r *rate.Limiter) bool {
	if err := r.Wait(ctx); err != nil {
		if _, ok := ctx.Deadline(); ok {
			<-ctx.Done()
		}
		return false
	}
	return true
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
	e := fault.Errorf(fault.Unavailable, "busy", "the server is busy %s (at most %s); retry in a moment", l.what, l.bounds())
	e.RetryAfter = l.retryAfter()
	return e
}

func (l *Limiter) bounds() string {
	s := fmt.Sprintf("%d at once", l.cfg.Global)
	if l.rate != nil {
		s += fmt.Sprintf(", %g per second", l.cfg.Rate)
	}
	return s
}

func (l *Limiter) tooMany() error {
	share := fmt.Sprintf("%d at once", l.cfg.PerCaller)
	if l.cfg.PerCallerRate > 0 {
		share += fmt.Sprintf(", %g per second", l.cfg.PerCallerRate)
	}
	e := fault.Errorf(fault.TooMany, "too_many_in_flight", "this caller has used up its share of %s (%s); wait for its requests in progress to finish, then retry", l.what, share)
	e.RetryAfter = l.retryAfter()
	return e
}

// InFlight returns the number of slots taken (metrics, tests).
func (l *Limiter) InFlight() int {
	if l == nil {
		return 0
	}
	return len(l.global)
}

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
