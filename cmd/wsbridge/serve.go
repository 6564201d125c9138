package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/internal/authfile"
	"github.com/wsbridge/wsbridge/internal/tlsfiles"
	"github.com/wsbridge/wsbridge/targets"
)

// waitForStop returns why the daemon should stop, or the error that stopped
// the listener.
func waitForStop(ctx context.Context, srv *bridge.Server, proc *procOptions, served <-chan error, hup <-chan os.Signal, reload func()) (string, error) {
	var tick <-chan time.Time
	if proc.runOnce || proc.timeout > 0 || proc.idleTimeout > 0 {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	start, busy := time.Now(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return "signal", nil
		case <-hup:
			reload()
		case <-proc.reload:
			reload()
		case err := <-served:
			return "", fmt.Errorf("listener: %w", err)
		case now := <-tick:
			active := srv.Active()
			if active > 0 {
				busy = now
			}
			switch {
			case proc.runOnce && srv.Total() > 0 && active == 0:
				return "--run-once: the session ended", nil
			case proc.timeout > 0 && now.Sub(start) >= proc.timeout:
				return "--timeout", nil
			case proc.idleTimeout > 0 && active == 0 && now.Sub(busy) >= proc.idleTimeout:
				return "--idle-timeout: no session", nil
			}
		}
	}
}

func routeAttrs(r targets.Route) []any {
	attrs := []any{"target", r.Target.Name, "address", r.Target.String()}
	switch {
	case r.Token != "":
		attrs = append(attrs, "token_hash", bridge.TokenHash(r.Token))
	case r.Path == "" && r.Host == "":
		attrs = append(attrs, "path", "*")
	}
	if r.Host != "" {
		attrs = append(attrs, "host", r.Host)
	}
	if r.Path != "" {
		attrs = append(attrs, "path", r.Path)
	}
	return attrs
}

// buildDoor reads the TLS and credential files into opts. It returns the
// certificate store to watch, or nil without TLS. Routes get their TLS
// toward targets too.
func buildDoor(st *settings, opts *bridge.Options, logger *slog.Logger, store *tlsfiles.Store) (*tlsfiles.Store, error) {
	switch {
	case st.tls != nil && store != nil:
		// A reload: the listeners keep their tls.Config, whose callback
		// reads the store; the caller updates the store last.
		opts.TLS = store.Config()
	case st.tls != nil:
		o := *st.tls
		o.Logger = logger
		var err error
		if store, err = tlsfiles.Load(&o); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		opts.TLS = store.Config()
	}
	if a := st.auth; a != nil {
		auth := a.opts
		if a.htpasswd != "" {
			h, err := authfile.NewHtpasswd(a.htpasswd, logger)
			if err != nil {
				return nil, fmt.Errorf("auth.htpasswd: %w", err)
			}
			auth.Passwords = h
		}
		if a.user != "" {
			auth.Passwords = authfile.NewPassword(a.user, a.password)
		}
		if a.bearer != "" {
			b, err := authfile.NewBearer(a.bearer, logger)
			if err != nil {
				return nil, fmt.Errorf("auth.bearer_file: %w", err)
			}
			auth.Bearer = b
		}
		opts.Auth = &auth
	}
	if st.targetTLS != nil {
		cfg, err := tlsfiles.ClientConfig(st.targetTLS)
		if err != nil {
			return nil, fmt.Errorf("target_tls: %w", err)
		}
		opts.TargetTLS = cfg
	}
	for i := range st.routes {
		t := &st.routes[i].Target
		if o, ok := st.routeTLS[t.Name]; ok {
			cfg, err := tlsfiles.ClientConfig(o)
			if err != nil {
				return nil, fmt.Errorf("target %q tls: %w", t.Name, err)
			}
			t.TLS = cfg
		}
	}
	return store, nil
}

// buildResolver makes the router over the configured targets and the
// chain of token sources. A source that cannot work at all stops the
// start: a token file, key or directory that cannot be read. A token file
// with bad lines is logged and its good lines are used, as later edits
// will be; Redis that does not answer yet is logged, and its lookups
// answer 503 until it does. check builds everything without contacting
// Redis.
func buildResolver(ctx context.Context, st *settings, logger *slog.Logger, check bool) (targets.Resolver, func(), error) {
	var chain targets.Chain
	var closers []func() error
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for _, spec := range st.sources {
		r, closeFn, err := buildSource(ctx, spec, logger, check)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("%s: %w", spec.label(), err)
		}
		if closeFn != nil {
			closers = append(closers, closeFn)
		}
		chain = append(chain, r)
		if !check {
			attrs := []any{"source", spec.label()}
			if spec.allow != nil {
				attrs = append(attrs, "allow", spec.allow.String())
			}
			logger.Info("bridging by token", attrs...)
			if spec.dynamic() && spec.allow == nil {
				logger.Warn("no --allow: every target this token source names is reachable, as with websockify; add --allow CIDR[:PORTS] to limit it", "source", spec.label())
			}
		}
	}
	var tokens targets.Resolver
	switch len(chain) {
	case 0:
	case 1:
		tokens = chain[0]
	default:
		tokens = chain
	}
	r, err := targets.NewRouter(st.routes, tokens)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return r, closeAll, nil
}

func buildSource(ctx context.Context, spec *sourceSpec, logger *slog.Logger, check bool) (targets.Resolver, func() error, error) {
	switch {
	case spec.file != nil && spec.names:
		f := targets.NewFileNameTokens(spec.file.Path, spec.allow)
		return f, nil, f.Check()
	case spec.file != nil:
		f := targets.NewTokenFile(spec.file.Path, logger)
		if err := f.Load(); err != nil {
			var pe *fs.PathError
			if check || errors.As(err, &pe) {
				return nil, nil, err
			}
			logger.Error("token file has errors; the lines that parsed are in use", "path", spec.file.Path, "err", err)
		}
		return targets.Restrict(f, spec.allow), nil, nil
	case spec.redis != nil:
		o := *spec.redis
		o.Logger = logger
		o.Allow = spec.allow
		r := targets.NewRedis(&o)
		if !check {
			if err := r.Ping(ctx); err != nil {
				logger.Error("redis token source does not answer yet; its lookups answer 503 until it does", "addr", o.Addr, "err", err)
			}
		}
		return r, r.Close, nil
	case spec.jwt != nil:
		o := *spec.jwt
		o.Allow = spec.allow
		if len(o.Algorithms) == 0 {
			// The websockify command line cannot name algorithms: pin
			// the key's family.
			data, err := os.ReadFile(o.KeyFile)
			if err != nil {
				return nil, nil, err
			}
			if o.Algorithms, err = targets.KeyAlgorithms(data, o.SecretEncoding); err != nil {
				return nil, nil, fmt.Errorf("jwt key %s: %w", o.KeyFile, err)
			}
		}
		j, err := targets.NewJWT(&o)
		return j, nil, err
	case spec.http != nil:
		o := *spec.http
		o.Logger = logger
		o.Allow = spec.allow
		h, err := targets.NewHTTPLookup(&o)
		if err != nil {
			return nil, nil, err
		}
		return h, h.Close, nil
	case spec.sockDir != "":
		d, err := targets.NewSocketDir(spec.sockDir)
		if err != nil {
			return nil, nil, err
		}
		return d, nil, d.Check()
	}
	return nil, nil, fmt.Errorf("unknown token source")
}
