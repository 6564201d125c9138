package targets

import (
	"log/slog"
	"sync"
	"sync/atomic"
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
	log   *slog.Logger
	what  string // "redis token source"
	attrs []any  // where it is: "addr", ... (never a token)
	down  atomic.Bool
}

// failed records a lookup the source could not answer.
func (h *health) failed(err error) {
	if h.down.CompareAndSwap(false, true) {
		h.log.Error(h.what+" unavailable; token lookups answer 503 until it is back", append(h.attrs[:len(h.attrs):len(h.attrs)], "err", err)...)
	}
}

// answered records a lookup the source answered, found or not.
func (h *health) answered() {
	if h.down.Load() && h.down.CompareAndSwap(true, false) {
		h.log.Info(h.what+" answering again", h.attrs...)
	}
}
