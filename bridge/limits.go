package bridge

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/wsbridge/wsbridge/ratelimit"
	"github.com/wsbridge/wsbridge/targets"
)

// fallbackCeiling is the session ceiling where the open-files limit is
// unknown.
const fallbackCeiling = 10_000

// SessionCeiling is the most sessions this process can hold: every session
// takes two descriptors (client and target), and 64 are kept for
// listeners, logs and token sources.
func SessionCeiling() int {
	n := openFiles()
	if n <= 0 {
		return fallbackCeiling
	}
	return max((n-64)/2, 1)
}

// ticket is what one request holds of the limits; release gives it back.
type ticket struct {
	addr    netip.Addr
	clients *ratelimit.Clients // holds a slot for addr, or nil
	global  bool               // a slot of MaxSessions
	keys    []string
}

func (s *Server) release(tk *ticket) {
	if tk.clients != nil {
		tk.clients.Release(tk.addr)
	}
	if tk.global {
		s.inflight.Add(-1)
	}
	for _, k := range tk.keys {
		s.slots.Release(k)
	}
}

// admit applies the global and per-address limits, before any other work.
func (s *Server) admit(tk *ticket, now time.Time) *refusal {
	if s.inflight.Add(1) > int64(s.limits.Load().MaxSessions) {
		s.inflight.Add(-1)
		rf := refuse(http.StatusServiceUnavailable, "server at capacity")
		rf.retryAfter = unavailableRetry
		return rf
	}
	tk.global = true
	clients := s.clients.Load()
	switch why, wait := clients.Admit(tk.addr, now); why {
	case ratelimit.TooMany:
		return refuse(http.StatusTooManyRequests, "too many sessions from this address")
	case ratelimit.TooFast:
		rf := refuse(http.StatusTooManyRequests, "too many handshakes from this address")
		rf.retryAfter = wait
		return rf
	}
	tk.clients = clients
	return nil
}

// admitTarget applies the per-target and per-token session caps, once the
// target is known.
func (s *Server) admitTarget(tk *ticket, t targets.Target, token string) *refusal {
	l := s.limits.Load()
	max := l.PerTargetSessions
	if t.Settings != nil && t.Settings.MaxSessions != 0 {
		max = t.Settings.MaxSessions
	}
	if max > 0 {
		key := "target " + targetKey(t)
		if !s.slots.Acquire(key, max) {
			rf := refuse(http.StatusServiceUnavailable, "target at capacity")
			rf.retryAfter = unavailableRetry
			return rf
		}
		tk.keys = append(tk.keys, key)
	}
	if token != "" && l.PerTokenSessions > 0 {
		key := "token " + TokenHash(token)
		if !s.slots.Acquire(key, l.PerTokenSessions) {
			return refuse(http.StatusTooManyRequests, "too many sessions for this token")
		}
		tk.keys = append(tk.keys, key)
	}
	return nil
}

// targetKey names a target for its shared limits: its configured name, or
// its address for targets from token sources.
func targetKey(t targets.Target) string {
	if t.Name != "" {
		return t.Name
	}
	return t.Network + ":" + t.Address
}

// direction holds the byte limits of one direction of a session: its own,
// its target's and the server's, nil when unlimited.
type direction struct {
	name  string // "in" or "out", for the Observer
	lims  []*ratelimit.Bandwidth
	chunk int // the largest read one wait covers
}

func newDirection(name string, readSize int, lims ...*ratelimit.Bandwidth) direction {
	d := direction{name: name, chunk: readSize}
	for _, l := range lims {
		if l != nil {
			d.lims = append(d.lims, l)
			d.chunk = min(d.chunk, l.Chunk())
		}
	}
	return d
}

// wait books n bytes on every limit and returns how long to wait.
func (d *direction) wait(n int, now time.Time) time.Duration {
	var w time.Duration
	for _, l := range d.lims {
		w = max(w, l.Reserve(n, now))
	}
	return w
}

// targetBW is the shared bandwidth of a configured target, with the rates
// it was made for.
type targetBW struct {
	in, out         *ratelimit.Bandwidth
	inRate, outRate int64
}

// targetBandwidth returns the shared limits of a configured target, set to
// the rates its Settings name now (a reload may have changed them).
func (s *Server) targetBandwidth(t targets.Target) (in, out *ratelimit.Bandwidth) {
	var rin, rout int64
	if set := t.Settings; set != nil {
		rin, rout = set.BandwidthIn, set.BandwidthOut
	}
	key := targetKey(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	tb, ok := s.targetBW[key]
	if !ok && rin <= 0 && rout <= 0 {
		return nil, nil
	}
	if !ok {
		tb = &targetBW{}
		s.targetBW[key] = tb
	}
	now := time.Now()
	tb.in, tb.inRate = retune(tb.in, tb.inRate, rin, now)
	tb.out, tb.outRate = retune(tb.out, tb.outRate, rout, now)
	return tb.in, tb.out
}

// retune sets b to rate, making it when there is none yet.
func retune(b *ratelimit.Bandwidth, had, rate int64, now time.Time) (*ratelimit.Bandwidth, int64) {
	switch {
	case rate == had:
	case b == nil:
		b = ratelimit.NewBandwidth(rate)
	default:
		b.Set(rate, now)
	}
	return b, rate
}

// Limits are the limits of a Server that SetLimits can change while it
// runs. Each field means what the field of the same name in Options means,
// zero included.
type Limits struct {
	MaxSessions                             int
	PerIPSessions                           int
	PerIPRate                               float64
	PerIPBurst                              int
	PerTargetSessions, PerTokenSessions     int
	SessionBandwidthIn, SessionBandwidthOut int64
	TotalBandwidthIn, TotalBandwidthOut     int64
}

func (o *Options) limits() Limits {
	return Limits{
		MaxSessions: o.MaxSessions, PerIPSessions: o.PerIPSessions, PerIPRate: o.PerIPRate, PerIPBurst: o.PerIPBurst,
		PerTargetSessions: o.PerTargetSessions, PerTokenSessions: o.PerTokenSessions,
		SessionBandwidthIn: o.SessionBandwidthIn, SessionBandwidthOut: o.SessionBandwidthOut,
		TotalBandwidthIn: o.TotalBandwidthIn, TotalBandwidthOut: o.TotalBandwidthOut,
	}
}

func (l *Limits) withDefaults() {
	ceiling := SessionCeiling()
	if l.MaxSessions <= 0 || l.MaxSessions > ceiling {
		l.MaxSessions = ceiling
	}
	setDefault(&l.PerIPSessions, defaultPerIPSessions)
	setDefault(&l.PerIPRate, defaultPerIPRate)
	setDefault(&l.PerIPBurst, defaultPerIPBurst)
}

// Limits returns the limits in effect, defaults filled in.
func (s *Server) Limits() Limits { return *s.limits.Load() }

// SetLimits changes the limits of a running Server, as a configuration
// reload does. New handshakes see the new caps; sessions already admitted
// keep their slots. Bandwidth shared by sessions (total, per target) takes
// its new rate at once, and live sessions keep every byte, only changing
// pace; a session's own bandwidth applies to sessions that start later.
// Per-address counts start afresh when the per-address limits change.
func (s *Server) SetLimits(l Limits) {
	l.withDefaults()
	old := s.limits.Swap(&l)
	if old.PerIPSessions != l.PerIPSessions || old.PerIPRate != l.PerIPRate || old.PerIPBurst != l.PerIPBurst {
		s.clients.Store(ratelimit.NewClients(l.PerIPSessions, l.PerIPRate, l.PerIPBurst))
	}
	now := time.Now()
	for i, v := range []int64{l.TotalBandwidthIn, l.TotalBandwidthOut} {
		if b := s.totalBW[i].Load(); b != nil {
			b.Set(v, now)
		} else if v > 0 {
			s.totalBW[i].Store(ratelimit.NewBandwidth(v))
		}
	}
}
