package ratelimit

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Clients limits each client address (an IPv6 /64) to a number of live
// sessions and a rate of new handshakes. Addresses without live sessions
// whose handshake bucket has refilled are forgotten, since a full bucket is
// the same as a new one, so the state is bounded by the clients active in
// the last few seconds (and by a hard cap past which new addresses are not
// tracked). A Clients is safe for concurrent use.
type Clients struct {
	max   int        // live sessions per address; <= 0 is no cap
	every rate.Limit // handshakes per second; rate.Inf is no limit
	burst int

	mu      sync.Mutex
	clients table[client]
}

type client struct {
	lim      *rate.Limiter // nil without a rate limit
	sessions int
}

// NewClients returns per-address limits: at most maxSessions live sessions (<= 0:
// no cap) and handshakes at perSecond with burst (perSecond <= 0: no
// limit). It returns nil, which admits everything, when both are off.
func NewClients(maxSessions int, perSecond float64, burst int) *Clients {
	every := rate.Inf
	if perSecond > 0 {
		every = rate.Limit(perSecond)
		burst = max(burst, 1)
	}
	if maxSessions <= 0 && every == rate.Inf {
		return nil
	}
	c := &Clients{max: maxSessions, every: every, burst: burst}
	c.clients = newTable(time.Second, func(cl *client, now time.Time) bool {
		return cl.sessions == 0 && (cl.lim == nil || cl.lim.TokensAt(now) >= float64(c.burst))
	})
	return c
}

// Refusal says why Admit refused.
type Refusal uint8

const (
	Admitted Refusal = iota
	// TooFast: the address opened handshakes faster than its rate.
	TooFast
	// TooMany: the address holds its maximum of live sessions.
	TooMany
)

// Admit takes one handshake of a at now and, when it is admitted, one
// session slot that the caller gives back with Release. For TooFast it also
// returns how long until the next handshake would pass.
func (c *Clients) Admit(a netip.Addr, now time.Time) (Refusal, time.Duration) {
	if c == nil || !a.IsValid() {
		return Admitted, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.clients.entry(a, now, func() *client {
		cl := &client{}
		if c.every != rate.Inf {
			cl.lim = rate.NewLimiter(c.every, c.burst)
		}
		return cl
	})
	if cl == nil {
		// A flood of addresses: the global session cap still holds.
		return Admitted, 0
	}
	if c.max > 0 && cl.sessions >= c.max {
		return TooMany, 0
	}
	if cl.lim != nil {
		r := cl.lim.ReserveN(now, 1)
		if d := r.DelayFrom(now); d > 0 {
			r.CancelAt(now)
			return TooFast, d
		}
	}
	cl.sessions++
	return Admitted, 0
}

// Release gives back the session slot of an admitted handshake of a.
func (c *Clients) Release(a netip.Addr) {
	if c == nil || !a.IsValid() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl := c.clients.get(a); cl != nil && cl.sessions > 0 {
		cl.sessions--
	}
}

// Len returns the number of addresses with state, for tests and metrics.
func (c *Clients) Len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.clients.m)
}

// Counter counts live sessions per key (a target, a token hash) against a
// maximum given with each Acquire. Keys without sessions are deleted, so it
// holds no more entries than there are live sessions. A Counter is safe
// for concurrent use; its zero value is ready.
type Counter struct {
	mu sync.Mutex
	n  map[string]int
}

// Acquire takes a slot for key unless it holds max already (max <= 0: no
// cap). It reports whether it did.
func (c *Counter) Acquire(key string, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if max > 0 && c.n[key] >= max {
		return false
	}
	if c.n == nil {
		c.n = make(map[string]int)
	}
	c.n[key]++
	return true
}

// Release gives back a slot of key.
func (c *Counter) Release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] <= 1 {
		delete(c.n, key)
		return
	}
	c.n[key]--
}

// Len returns the number of keys with live sessions.
func (c *Counter) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.n)
}

// Bandwidth is a byte rate shared by everything that waits on it: one
// session's direction, or all sessions of a target, or the whole server.
// Its burst is a tenth of a second's worth, between 1 KiB and MaxChunk, and
// readers cap each read at Chunk so that a wait never asks for more than
// the burst (x/time/rate's WaitN fails at once when it does). The rate can
// change while sessions wait on it. A Bandwidth is safe for concurrent use.
type Bandwidth struct {
	lim *rate.Limiter
}

// MaxChunk is the largest burst, the size of one relay read.
const MaxChunk = 64 << 10

// NewBandwidth returns a limit of bytesPerSecond, or nil (unlimited) for
// bytesPerSecond <= 0.
func NewBandwidth(bytesPerSecond int64) *Bandwidth {
	if bytesPerSecond <= 0 {
		return nil
	}
	return &Bandwidth{lim: rate.NewLimiter(rate.Limit(bytesPerSecond), burstFor(bytesPerSecond))}
}

func burstFor(bytesPerSecond int64) int {
	return int(min(max(bytesPerSecond/10, 1<<10), MaxChunk))
}

// Chunk is the largest read that one wait may cover.
func (b *Bandwidth) Chunk() int {
	if b == nil {
		return MaxChunk
	}
	return b.lim.Burst()
}

// Set changes the rate; bytesPerSecond <= 0 lifts it. Sessions waiting now
// wait for the new rate.
func (b *Bandwidth) Set(bytesPerSecond int64, now time.Time) {
	if bytesPerSecond <= 0 {
		b.lim.SetLimitAt(now, rate.Inf)
		return
	}
	b.lim.SetBurstAt(now, burstFor(bytesPerSecond))
	b.lim.SetLimitAt(now, rate.Limit(bytesPerSecond))
}

// Reserve books n bytes (n <= Chunk) and returns how long to wait before
// sending them.
func (b *Bandwidth) Reserve(n int, now time.Time) time.Duration {
	if b == nil {
		return 0
	}
	return b.lim.ReserveN(now, min(n, b.lim.Burst())).DelayFrom(now)
}
