package bridge

import (
	"log/slog"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/ratelimit"
	"github.com/wsbridge/wsbridge/targets"
)

// config is everything Reload replaces at once: a request loads it once and
// sees one configuration from its first check to its dial, and a session
// keeps the one it started with.
type config struct {
	opts     Options
	resolver targets.Resolver
	hosts    []hostPattern
	origins  []originPattern
	failures *ratelimit.FailureBudget // nil when off
}

// newConfig prepares opts (defaults applied) for requests. failures is
// the budget to keep when its settings did not change, or nil.
func newConfig(r targets.Resolver, opts Options, failures *ratelimit.FailureBudget, log *slog.Logger) *config {
	c := &config{opts: opts, resolver: r, failures: failures}
	// cmd validates these with ParseHostPattern and ParseOriginPattern; a
	// bad entry that reaches here admits nothing.
	for _, h := range opts.Hosts {
		if p, err := parseHostPattern(h); err == nil {
			c.hosts = append(c.hosts, p)
		} else {
			log.Error("ignoring a host entry", "err", err)
			c.hosts = append(c.hosts, hostPattern{name: "\x00"})
		}
	}
	for _, o := range opts.Origins {
		if p, err := parseOriginPattern(o); err == nil {
			c.origins = append(c.origins, p)
		} else {
			log.Error("ignoring an origin entry", "err", err)
		}
	}
	if c.failures == nil {
		c.failures = ratelimit.NewFailureBudget(opts.FailedLookups, opts.FailedLookupWindow, opts.FailedLookupBan)
	}
	return c
}

// Reload replaces the resolver and the options of a running Server, as a
// configuration reload does. Every handshake that starts afterwards sees
// all of the new configuration, one that started before sees all of the
// old; live sessions keep theirs (use Retire to end those whose target is
// gone). Limits change as SetLimits says; the failed-lookup budget keeps
// its counts unless its settings changed.
//
// What shapes listeners and buffers keeps its first value: Logger,
// HeaderTimeout, MaxHeaderBytes, TLS, AllowPlain and ReadSize. Certificates
// change through the tls.Config's own callbacks.
func (s *Server) Reload(r targets.Resolver, opts *Options) {
	o := opts.withDefaults()
	first := &s.cfg.Load().opts
	o.Logger, o.HeaderTimeout, o.MaxHeaderBytes = first.Logger, first.HeaderTimeout, first.MaxHeaderBytes
	o.TLS, o.AllowPlain, o.ReadSize = first.TLS, first.AllowPlain, first.ReadSize
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cfg.Load()
	keep := old.failures
	if o.FailedLookups != first.FailedLookups || o.FailedLookupWindow != first.FailedLookupWindow || o.FailedLookupBan != first.FailedLookupBan {
		keep = nil
	}
	s.cfg.Store(newConfig(r, o, keep, s.log))
	s.SetLimits(o.limits())
}

// Retire closes, with 1012 "Target removed" once grace has passed, every
// live session whose target removed reports as gone; the ones that end by
// themselves first are left alone. It returns how many it will close.
func (s *Server) Retire(removed func(targets.Target) bool, grace time.Duration) int {
	s.mu.Lock()
	var doomed []*session
	for sess := range s.sessions {
		if removed(sess.target) {
			doomed = append(doomed, sess)
		}
	}
	s.mu.Unlock()
	if len(doomed) == 0 {
		return 0
	}
	end := &ending{code: websocket.StatusServiceRestart, reason: reasonRetired, by: "server", send: true}
	time.AfterFunc(grace, func() {
		for _, sess := range doomed {
			sess.trigger(*end)
		}
	})
	return len(doomed)
}
