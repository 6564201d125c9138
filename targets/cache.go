package targets

import (
	"sync"
	"time"
)

// maxCacheEntries bounds a source's cache; a full cache first drops what
// has expired, then everything, so memory stays bounded under a flood of
// distinct valid tokens.
const maxCacheEntries = 10000

// cache remembers found targets for a short time, so that a page reload
// or a reconnecting client does not cost a lookup. Unknown tokens are not
// cached: a token added to the store works at once.
type cache struct {
	ttl time.Duration // <= 0: off

	mu sync.Mutex
	m  map[string]cacheEntry
}

type cacheEntry struct {
	t   Target
	exp time.Time
}

func (c *cache) get(tok string, now time.Time) (Target, bool) {
	if c.ttl <= 0 {
		return Target{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[tok]
	if !ok || now.After(e.exp) {
		return Target{}, false
	}
	return e.t, true
}

func (c *cache) put(tok string, t Target, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]cacheEntry)
	}
	if len(c.m) >= maxCacheEntries {
		for k, e := range c.m {
			if now.After(e.exp) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCacheEntries {
			clear(c.m)
		}
	}
	c.m[tok] = cacheEntry{t: t, exp: now.Add(c.ttl)}
}

// health logs a source going down and coming back once each, not once per
// lookup, so an outage is one clear error line and one recovery line.
type health struct {
	mu   sync.Mutex
	down bool
}

// set records the outcome of a call and reports whether the state changed.
func (h *health) set(down bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	changed := h.down != down
	h.down = down
	return changed
}
