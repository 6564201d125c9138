package bridge

import (
	"math"
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
	addr   netip.Addr
	client bool // a slot of Options.PerIPSessions
	global bool // a slot of Options.MaxSessions
	keys   []string
}

func (s *Server) release(tk *ticket) {
	if tk.client {
		s.clients.Release(tk.addr)
	}
	if tk.global {
		s.inflight.Add(-1)
	}
	for _, k := range tk.keys {
		s.slots.Release(k)
	}
}

// retryAfter rounds a wait up to whole seconds for Retry-After.
func retryAfter(d time.Duration) time.Duration {
	return time.Duration(math.Ceil(d.Seconds())) * time.Second
}

// admit applies the global and per-address limits, before any other work.
func (s *Server) admit(tk *ticket, now time.Time) *refusal {
	if s.inflight.Add(1) > int64(s.opts.MaxSessions) {
		s.inflight.Add(-1)
		rf := refuse(http.StatusServiceUnavailable, "server at capacity")
		rf.retryAfter = unavailableRetry
		return rf
	}
	tk.global = true
	switch why, wait := s.clients.Admit(tk.addr, now); why {
	case ratelimit.TooMany:
		return refuse(http.StatusTooManyRequests, "too many sessions from this address")
	case ratelimit.TooFast:
		rf := refuse(http.StatusTooManyRequests, "too many handshakes from this address")
		rf.retryAfter = retryAfter(wait)
		return rf
	}
	tk.client = s.clients != nil
	return nil
}

// admitTarget applies the per-target and per-token session caps, once the
// target is known.
func (s *Server) admitTarget(tk *ticket, t targets.Target, token string) *refusal {
	max := s.opts.PerTargetSessions
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
	if token != "" && s.opts.PerTokenSessions > 0 {
		key := "token " + TokenHash(token)
		if !s.slots.Acquire(key, s.opts.PerTokenSessions) {
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
	lims  []*ratelimit.Bandwidth
	chunk int // the largest read one wait covers
}

func newDirection(readSize int, lims ...*ratelimit.Bandwidth) direction {
	d := direction{chunk: readSize}
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

// targetBandwidth returns the shared limits of a configured target.
func (s *Server) targetBandwidth(t targets.Target) (in, out *ratelimit.Bandwidth) {
	set := t.Settings
	if set == nil || set.BandwidthIn <= 0 && set.BandwidthOut <= 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := targetKey(t)
	tb, ok := s.targetBW[key]
	if !ok {
		tb = [2]*ratelimit.Bandwidth{ratelimit.NewBandwidth(set.BandwidthIn), ratelimit.NewBandwidth(set.BandwidthOut)}
		s.targetBW[key] = tb
	}
	return tb[0], tb[1]
}

// Limits are the limits a running Server can change: SetLimits applies
// them to new handshakes and, for bandwidth, to the bytes live sessions
// send from then on. A zero field means the same as in Options.
type Limits struct {
	TotalBandwidthIn, TotalBandwidthOut int64
}

// SetLimits changes the server-wide bandwidth while sessions run: live
// sessions keep every byte and only change pace; a limit set where there
// was none applies to sessions that start afterwards.
func (s *Server) SetLimits(l Limits) {
	now := time.Now()
	for i, v := range []int64{l.TotalBandwidthIn, l.TotalBandwidthOut} {
		if b := s.totalBW[i].Load(); b != nil {
			b.Set(v, now)
		} else if v > 0 {
			s.totalBW[i].Store(ratelimit.NewBandwidth(v))
		}
	}
}
