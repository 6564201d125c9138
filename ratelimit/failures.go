package ratelimit

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// FailureBudget refuses clients that keep presenting unknown tokens: each
// client may fail Max lookups per Window (refilled steadily, as a token
// bucket); the failure that empties its budget bans it for Ban. IPv4
// clients are keyed by address, IPv6 clients by their /64, the block one
// host usually holds. A FailureBudget is safe for concurrent use.
type FailureBudget struct {
	max   int
	every rate.Limit
	ban   time.Duration

	mu      sync.Mutex
	clients table[failures]
}

type failures struct {
	lim   *rate.Limiter
	until time.Time // banned before this time
}

// NewFailureBudget returns a budget of max failures per window and a ban
// of ban. max <= 0 returns nil, which never bans.
func NewFailureBudget(max int, window, ban time.Duration) *FailureBudget {
	if max <= 0 || window <= 0 {
		return nil
	}
	b := &FailureBudget{max: max, every: rate.Every(window / time.Duration(max)), ban: ban}
	// A client that is not banned and whose budget is full again is the
	// same as a new one; look at most once per refill of one failure.
	b.clients = newTable(window/time.Duration(max), func(f *failures, now time.Time) bool {
		return !now.Before(f.until) && f.lim.TokensAt(now) >= float64(b.max)
	})
	return b
}

// Banned reports whether a is refused at now, and for how much longer.
func (b *FailureBudget) Banned(a netip.Addr, now time.Time) (time.Duration, bool) {
	if b == nil || !a.IsValid() {
		return 0, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.clients.get(a)
	if f == nil || !now.Before(f.until) {
		return 0, false
	}
	return f.until.Sub(now), true
}

// Fail records a failed lookup by a at now. It reports whether this
// failure started a ban.
func (b *FailureBudget) Fail(a netip.Addr, now time.Time) bool {
	if b == nil || !a.IsValid() {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.clients.entry(a, now, func() *failures { return &failures{lim: rate.NewLimiter(b.every, b.max)} })
	if f == nil || now.Before(f.until) {
		return false
	}
	f.lim.AllowN(now, 1)
	if f.lim.TokensAt(now) < 1 {
		f.until = now.Add(b.ban)
		return true
	}
	return false
}

// Len returns the number of clients with state, for tests and metrics.
func (b *FailureBudget) Len() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.clients.m)
}
