package bridge

import (
	"crypto/subtle"
	"net/http"
	"time"

	"github.com/wsbridge/wsbridge/targets"
)

// Observer receives what a Server does, for metrics. Its methods are called
// from many goroutines, on the paths they describe, and must return
// quickly. Labels are constants or configured target names: never a token,
// an address or other text from a request.
type Observer interface {
	// Refused counts a request answered with an error status before any
	// upgrade. kind is a short constant such as "origin", "not_found",
	// "capacity" or "rate_limited".
	Refused(kind string)
	// Dialled reports one dial of target (its metric label), how long it
	// took, and err when it failed.
	Dialled(target string, took time.Duration, err error)
	// Ended reports a session that ended: its target's label, who ended
	// it ("client", "target" or "server") and the close code.
	Ended(target, by string, code int)
	// Waited reports a wait for bandwidth; dir is "in" (client to target)
	// or "out".
	Waited(dir string, d time.Duration)
}

type nopObserver struct{}

func (nopObserver) Refused(string)                       {}
func (nopObserver) Dialled(string, time.Duration, error) {}
func (nopObserver) Ended(string, string, int)            {}
func (nopObserver) Waited(string, time.Duration)         {}

// DynamicTarget is the metric label of every target that came from a token
// source: their addresses are not configuration and could be many.
const DynamicTarget = "(dynamic)"

// MetricLabel is the label by which metrics name t: its configured name, or
// DynamicTarget.
func MetricLabel(t targets.Target) string {
	if t.Name != "" {
		return t.Name
	}
	return DynamicTarget
}

// Stats is a snapshot of a Server's sessions.
type Stats struct {
	// Active counts the live sessions by target label.
	Active map[string]int
	// BytesIn and BytesOut are the bytes relayed since the Server was
	// made, client to target and back, live sessions included.
	BytesIn, BytesOut int64
	// Total counts the sessions upgraded since the Server was made.
	Total uint64
	// Draining is set once Shutdown has begun.
	Draining bool
}

// Stats returns a snapshot of the sessions. It walks the live sessions, so
// call it at scrape time, not per byte.
func (s *Server) Stats() Stats {
	st := Stats{Active: map[string]int{}, Total: s.total.Load()}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.BytesIn, st.BytesOut, st.Draining = s.doneIn, s.doneOut, s.draining
	for sess := range s.sessions {
		st.Active[sess.label]++
		st.BytesIn += sess.bytesIn.Load()
		st.BytesOut += sess.bytesOut.Load()
	}
	return st
}

// SelfCheck lets the daemon test itself end to end: a request that carries
// Key in the SelfCheckHeader skips Host, Origin, authentication and token
// lookup (admission still applies) and is bridged to Target, a built-in
// echo. Key must be long and random and must never be logged.
type SelfCheck struct {
	Key    string
	Target targets.Target
}

// SelfCheckHeader carries SelfCheck.Key.
const SelfCheckHeader = "Wsbridge-Self-Check"

func (sc *SelfCheck) matches(r *http.Request) bool {
	if sc == nil || len(sc.Key) < 32 {
		return false
	}
	got := r.Header.Get(SelfCheckHeader)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(sc.Key)) == 1
}
