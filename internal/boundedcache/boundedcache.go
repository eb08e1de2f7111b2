// Package boundedcache is a small concurrency-safe map with a size bound,
// for values that never change once computed (unwrapped key material,
// verified certificate chains and collateral). When full, an arbitrary
// entry makes room: the values are cheap to recompute and the bound only
// protects memory.
package boundedcache

import "sync"

// Map is a bounded cache.
type Map[K comparable, V any] struct {
	mu  sync.Mutex
	max int
	m   map[K]V
}

// New returns a cache holding at most max entries.
func New[K comparable, V any](max int) *Map[K, V] {
	return &Map[K, V]{max: max, m: make(map[K]V)}
}

// Get returns the value for k.
func (c *Map[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

// Put stores v for k.
func (c *Map[K, V]) Put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = v
}

// GetOrCompute returns the value for k, computing and storing it if absent.
// compute runs outside the lock; concurrent misses may compute twice.
func (c *Map[K, V]) GetOrCompute(k K, compute func() V) V {
	if v, ok := c.Get(k); ok {
		return v
	}
	v := compute()
	c.Put(k, v)
	return v
}

// Len returns the number of entries.
func (c *Map[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
