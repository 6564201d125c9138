package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/internal/metrics"
	"github.com/wsbridge/wsbridge/internal/recorder"
	"github.com/wsbridge/wsbridge/internal/systemd"
	"github.com/wsbridge/wsbridge/internal/tlsfiles"
	"github.com/wsbridge/wsbridge/targets"
)

// loader reads the configuration again, for a reload: the file, or the
// command line the daemon started with.
type loader func() (*Config, *source, hcl.Diagnostics)

// daemon is a running wsbridge: the bridge, what a reload replaces, and
// what stays from start to stop (listeners, admin listener, logger).
type daemon struct {
	load    loader
	log     *slog.Logger
	level   *slog.LevelVar
	srv     *bridge.Server
	metrics *metrics.Metrics // nil without an admin block
	store   *tlsfiles.Store  // nil without TLS
	sc      *selfChecker     // nil without self_check
	check   *bridge.SelfCheck

	mu      sync.Mutex // serialises reloads
	cfg     *Config
	st      atomic.Pointer[settings]
	release func()         // closes the token sources and files in use
	retired map[int]func() // releases of replaced configurations, due later
	nextID  int
}

// releaseDelay is how long a replaced configuration's token sources and
// files stay open, for the handshakes that started before the reload.
const releaseDelay = 30 * time.Second

func (d *daemon) current() *settings { return d.st.Load() }

func (d *daemon) selfCheck(ctx context.Context) (time.Duration, error) {
	if d.sc == nil {
		return 0, errors.New("not configured (admin.self_check)")
	}
	rtt, err := d.sc.run(ctx)
	if d.metrics != nil {
		d.metrics.SelfChecked(rtt, err)
	}
	return rtt, err
}

// build makes what a configuration needs besides the listeners: the
// bridge options with their credentials, the token sources, the web root
// and the recorder. release closes them. On a reload the certificates are
// updated last, once everything else has loaded: that step takes effect
// at once, and a refused reload must change nothing.
func (d *daemon) build(ctx context.Context, st *settings) (bridge.Options, targets.Resolver, func(), error) {
	opts := st.bridge
	opts.Logger = d.log
	opts.SelfCheck = d.check
	if d.metrics != nil {
		opts.Observer = d.metrics
	}
	store, err := buildDoor(st, &opts, d.log, d.store)
	if err != nil {
		return opts, nil, nil, err
	}
	resolver, release, err := buildResolver(ctx, st, d.log, false)
	if err != nil {
		return opts, nil, nil, err
	}
	fail := func(err error) (bridge.Options, targets.Resolver, func(), error) {
		release()
		return opts, nil, nil, err
	}
	if st.web != "" {
		files, err := bridge.NewStaticFiles(st.web, st.csp)
		if err != nil {
			return fail(fmt.Errorf("web root: %w", err))
		}
		opts.Files = files
		closeSources := release
		release = func() { closeSources(); files.Close() }
	}
	if st.recording != nil {
		o := *st.recording
		o.Logger = d.log
		rec, err := recorder.New(&o)
		if err != nil {
			return fail(fmt.Errorf("recording: %w", err))
		}
		opts.Recorder = rec
	}
	if d.store != nil && st.tls != nil {
		if err := d.store.Update(st.tls); err != nil {
			return fail(fmt.Errorf("tls: %w", err))
		}
	}
	d.store = store
	return opts, resolver, release, nil
}

// serve runs wsbridge until ctx ends (SIGINT or SIGTERM) or a websockify
// process option says to stop; then it drains. load gives the
// configuration, at start and on every reload.
func serve(ctx context.Context, load loader, proc *procOptions, stderr io.Writer) error {
	cfg, src, diags := load()
	var st *settings
	if !diags.HasErrors() {
		st, diags = validate(cfg, src)
	}
	if diags.HasErrors() {
		printDiags(stderr, diags)
		return errReported
	}
	level := new(slog.LevelVar)
	level.Set(st.logLevel)
	logger, closeLog, err := newLogger(st, level, stderr, proc.serviceLog)
	if err != nil {
		return err
	}
	defer closeLog()
	for _, w := range proc.warnings {
		logger.Warn(w)
	}
	d := &daemon{load: load, log: logger, level: level, cfg: cfg}
	d.st.Store(st)
	if st.admin != nil {
		d.metrics = metrics.New(buildVersion())
	}

	lns, err := openListeners(st, logger)
	if err != nil {
		return err
	}
	defer func() {
		for _, l := range lns {
			l.ln.Close()
		}
	}()
	if st.admin != nil && st.admin.selfCheck {
		if d.sc, d.check, err = newSelfChecker(lns, st.tls != nil); err != nil {
			return err
		}
		defer d.sc.Close()
	}
	opts, resolver, release, err := d.build(ctx, st)
	if err != nil {
		return err
	}
	d.release = release
	defer d.closeAll()
	d.srv = bridge.New(resolver, &opts)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if d.store != nil {
		go d.store.Watch(wctx, st.tlsReload)
	}

	var adm *admin
	if st.admin != nil {
		d.metrics.Watch(d.srv)
		d.metrics.Targets(targetNames(st))
		adm = &admin{d: d}
		aln, err := net.Listen("tcp", st.admin.listen)
		if err != nil {
			return fmt.Errorf("admin listener: %w", err)
		}
		hs := &http.Server{Handler: adm.handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
		go hs.Serve(aln)
		defer hs.Close()
		logger.Info("admin listening", "addr", aln.Addr().String(), "paths", "/metrics /healthz /readyz /selfcheck")
	}

	for _, r := range st.routes {
		logger.Info("bridging", routeAttrs(r)...)
	}
	scheme := "ws"
	if opts.TLS != nil {
		scheme = "wss"
		if opts.AllowPlain {
			scheme = "ws+wss"
		}
	}
	maxSessions := d.srv.Limits().MaxSessions
	if st.bridge.MaxSessions > maxSessions {
		logger.Warn("limits.max_sessions is above what the open-files limit allows; using the ceiling", "max_sessions", st.bridge.MaxSessions, "ceiling", maxSessions)
	}
	served := make(chan error, len(lns))
	var addrs []string
	for _, l := range lns {
		go func() { served <- d.srv.Serve(l.wrap(st, logger)) }()
		addrs = append(addrs, l.describe())
		logger.Info("listening", "addr", l.describe(), "scheme", scheme, "proxy_protocol", l.spec.proxy, "version", buildVersion(), "web", st.web, "max_sessions", maxSessions)
	}
	if adm != nil {
		adm.ready.Store(true)
	}
	if st.pidFile != "" {
		if err := os.WriteFile(st.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return fmt.Errorf("pid_file: %w", err)
		}
		defer os.Remove(st.pidFile)
	}
	notify(logger, "READY=1\nSTATUS=listening on "+strings.Join(addrs, " "))

	hup, stopHup := hangups()
	defer stopHup()
	why, err := waitForStop(ctx, d.srv, proc, served, hup, func() { d.reload(ctx) })
	if err != nil {
		return err
	}
	st = d.current()
	notify(logger, "STOPPING=1\nSTATUS=draining")
	logger.Info("shutting down", "reason", why, "drain", st.drain, "sessions", d.srv.Active())
	sctx, cancel := context.WithTimeout(context.Background(), st.drain)
	d.srv.Shutdown(sctx)
	cancel()
	for range lns {
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	logger.Info("stopped", "sessions_total", d.srv.Total())
	return nil
}

func notify(log *slog.Logger, state string) {
	if err := systemd.Notify(state); err != nil {
		log.Warn("telling systemd", "err", err)
	}
}

// closeAll closes the configuration in use and every replaced one.
func (d *daemon) closeAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, r := range d.retired {
		r()
		delete(d.retired, id)
	}
	if d.release != nil {
		d.release()
	}
}

// reload reads the configuration again and, if it is valid and its files
// load, puts it in place at once. Otherwise the running configuration
// stays and the reason is logged.
func (d *daemon) reload(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	notify(d.log, systemd.Reloading())
	defer notify(d.log, "READY=1")
	old := d.current()
	cfg, src, diags := d.load()
	var st *settings
	if !diags.HasErrors() {
		st, diags = validate(cfg, src)
	}
	if diags.HasErrors() {
		var b strings.Builder
		printDiags(&b, diags)
		d.refused(strings.TrimSpace(b.String()))
		return
	}
	changed, restart := diffConfig(d.cfg, cfg)
	if len(changed) == 0 {
		// Token files and certificates may have changed without the
		// configuration: read them again all the same.
		changed = []string{"nothing in the configuration; token sources, credentials and certificates were read again"}
	}
	opts, resolver, release, err := d.build(ctx, st)
	if err != nil {
		d.refused(err.Error())
		return
	}
	d.level.Set(st.logLevel)
	d.srv.Reload(resolver, &opts)
	gone := removedTargets(old, st)
	closing := d.srv.Retire(func(t targets.Target) bool { return t.Name != "" && gone[t.Name] }, st.grace)
	if d.retired == nil {
		d.retired = map[int]func(){}
	}
	id := d.nextID
	d.nextID++
	d.retired[id] = d.release
	d.release = release
	time.AfterFunc(releaseDelay, func() {
		d.mu.Lock()
		f, ok := d.retired[id]
		delete(d.retired, id)
		d.mu.Unlock()
		if ok {
			f()
		}
	})
	d.cfg = cfg
	d.st.Store(st)
	if d.metrics != nil {
		d.metrics.Reloaded(true)
		d.metrics.Targets(targetNames(st))
	}
	attrs := []any{"changed", strings.Join(changed, ", ")}
	if len(gone) > 0 {
		names := make([]string, 0, len(gone))
		for n := range gone {
			names = append(names, n)
		}
		slices.Sort(names)
		attrs = append(attrs, "removed_targets", strings.Join(names, ","), "sessions_closing", closing, "grace", st.grace)
	}
	d.log.Info("reloaded", attrs...)
	if len(restart) > 0 {
		d.log.Warn("reload: these settings take effect at the next restart", "settings", strings.Join(restart, ", "))
	}
}

func (d *daemon) refused(why string) {
	d.log.Error("reload refused; the running configuration stays in use", "err", why)
	if d.metrics != nil {
		d.metrics.Reloaded(false)
	}
}

// targetNames lists the configured targets, the only target labels of
// metrics besides the dynamic one.
func targetNames(st *settings) []string {
	var names []string
	for _, r := range st.routes {
		if !slices.Contains(names, r.Target.Name) {
			names = append(names, r.Target.Name)
		}
	}
	return names
}

// removedTargets names the targets of old that next does not have, or has
// at another address: their sessions lead somewhere the configuration no
// longer sends anyone.
func removedTargets(old, next *settings) map[string]bool {
	now := map[string]targets.Target{}
	for _, r := range next.routes {
		now[r.Target.Name] = r.Target
	}
	gone := map[string]bool{}
	for _, r := range old.routes {
		t, ok := now[r.Target.Name]
		if !ok || t.Network != r.Target.Network || t.Address != r.Target.Address {
			gone[r.Target.Name] = true
		}
	}
	return gone
}

// restartOnly are the top-level settings a reload cannot change: they
// shape listeners and the admin listener.
var restartOnly = []string{"listen", "listener", "admin", "pid_file"}

// restartFields are settings inside blocks that a reload cannot change:
// the log's destination, request and buffer sizes, TLS on the listeners.
var restartFields = []string{"log.file", "log.syslog", "log.format", "http.header_timeout",
	"http.max_header_size", "session.read_size", "tls", "tls.allow_plain"}

// diffConfig names the top-level settings and blocks that differ, and
// which settings need a restart.
func diffConfig(old, next *Config) (changed, restart []string) {
	a, b := configParts(old), configParts(next)
	for k := range b {
		if _, ok := a[k]; !ok {
			a[k] = ""
		}
	}
	for k, v := range a {
		if v != b[k] {
			changed = append(changed, k)
			if base, _, _ := strings.Cut(k, " "); slices.Contains(restartOnly, base) {
				restart = append(restart, k)
			}
		}
	}
	for _, f := range restartFields {
		if subValue(old, f) != subValue(next, f) {
			restart = append(restart, f)
		}
	}
	slices.Sort(changed)
	slices.Sort(restart)
	return changed, restart
}

// configParts renders each top-level attribute and block of cfg, keyed by
// name (and label).
func configParts(cfg *Config) map[string]string {
	f := hclwrite.NewEmptyFile()
	gohcl.EncodeIntoBody(cfg, f.Body())
	parts := map[string]string{}
	for name, a := range f.Body().Attributes() {
		parts[name] = string(a.Expr().BuildTokens(nil).Bytes())
	}
	for _, b := range f.Body().Blocks() {
		key := b.Type()
		if l := b.Labels(); len(l) > 0 {
			key += " " + strconv.Quote(l[0])
		}
		parts[key] = string(b.Body().BuildTokens(nil).Bytes())
	}
	return parts
}

func subValue(c *Config, path string) string {
	switch path {
	case "log.file":
		return c.Log.File
	case "log.syslog":
		return c.Log.Syslog
	case "log.format":
		return c.Log.Format
	case "http.header_timeout":
		return c.HTTP.HeaderTimeout
	case "http.max_header_size":
		return c.HTTP.MaxHeaderSize
	case "session.read_size":
		return c.Session.ReadSize
	case "tls":
		return strconv.FormatBool(c.TLS != nil)
	case "tls.allow_plain":
		if c.TLS == nil {
			return ""
		}
		return strconv.FormatBool(c.TLS.AllowPlain)
	}
	return ""
}
