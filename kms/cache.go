package kms

import (
	"sync"
)

// materialCache keeps unwrapped key material and app secrets, which never
// change once written (rotation adds versions; root rotation re-wraps the
// same material), so each request needs only the mutable key row from the
// store. States (disabled, pending deletion, destroyed) are always read
// fresh, before the cache is consulted.
type materialCache struct {
	mu  sync.Mutex
	max int
	m   map[string][]byte
}

func newMaterialCache(max int) *materialCache {
	return &materialCache{max: max, m: make(map[string][]byte)}
}

func (c *materialCache) get(k string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *materialCache) put(k string, v []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for old := range c.m { // evict an arbitrary entry
			delete(c.m, old)
			break
		}
	}
	c.m[k] = v
}
