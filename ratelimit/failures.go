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

	mu        sync.Mutex
	clients   map[netip.Prefix]*failures
	lastSweep time.Time
}

type failures struct {
	lim   *rate.Limiter
	until time.Time // banned before this time
}

// maxClients bounds the state: past it, new clients are not tracked until
// a sweep frees room, so a flood of addresses costs no memory.
const maxClients = 100_000

// NewFailureBudget returns a budget of max failures per window and a ban
// of ban. max <= 0 returns nil, which never bans.
func NewFailureBudget(max int, window, ban time.Duration) *FailureBudget {
	if max <= 0 || window <= 0 {
		return nil
	}
	return &FailureBudget{
		max:     max,
		every:   rate.Every(window / time.Duration(max)),
		ban:     ban,
		clients: make(map[netip.Prefix]*failures),
	}
}

func key(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// Banned reports whether a is refused at now, and for how much longer.
func (b *FailureBudget) Banned(a netip.Addr, now time.Time) (time.Duration, bool) {
	if b == nil || !a.IsValid() {
		return 0, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.clients[key(a)]
	if !ok || !now.Before(f.until) {
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
	b.sweep(now)
	k := key(a)
	f, ok := b.clients[k]
	if !ok {
		if len(b.clients) >= maxClients {
			return false
		}
		f = &failures{lim: rate.NewLimiter(b.every, b.max)}
		b.clients[k] = f
	}
	if now.Before(f.until) {
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
	return len(b.clients)
}

// sweep drops clients that are not banned and whose budget is full again,
// at most once per refill of one failure. Callers hold b.mu.
func (b *FailureBudget) sweep(now time.Time) {
	if now.Sub(b.lastSweep) < time.Duration(float64(time.Second)/float64(b.every)) && len(b.clients) < maxClients {
		return
	}
	b.lastSweep = now
	for k, f := range b.clients {
		if !now.Before(f.until) && f.lim.TokensAt(now) >= float64(b.max) {
			delete(b.clients, k)
		}
	}
}
