package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/targets"
)

// serve validates cfg, wires the packages together and runs until ctx ends
// (SIGINT or SIGTERM) or a websockify process option says to stop; then it
// drains.
func serve(ctx context.Context, cfg *Config, src *source, proc *procOptions, stderr io.Writer) error {
	st, diags := validate(cfg, src)
	if diags.HasErrors() {
		printDiags(stderr, diags)
		return errReported
	}
	logger, closeLog, err := newLogger(st, stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	for _, w := range proc.warnings {
		logger.Warn(w)
	}

	resolver, err := buildResolver(st, logger)
	if err != nil {
		return err
	}
	opts := st.bridge
	opts.Logger = logger
	if st.web != "" {
		files, err := bridge.NewStaticFiles(st.web)
		if err != nil {
			return fmt.Errorf("web root: %w", err)
		}
		defer files.Close()
		opts.Files = files
	}
	srv := bridge.New(resolver, &opts)

	ln, err := net.Listen("tcp", st.listen)
	if err != nil {
		return err
	}
	for _, r := range st.routes {
		path := r.Path
		if path == "" {
			path = "*"
		}
		logger.Info("bridging", "path", path, "target", r.Target.Name, "address", r.Target.String())
	}
	for _, tf := range st.tokens {
		logger.Info("bridging by token", "token_file", tf.Path)
	}

	logger.Info("listening", "addr", ln.Addr().String(), "version", buildVersion(), "web", st.web)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	why, err := waitForStop(ctx, srv, proc, served)
	if err != nil {
		return err
	}
	logger.Info("shutting down", "reason", why, "drain", st.drain, "sessions", srv.Active())
	sctx, cancel := context.WithTimeout(context.Background(), st.drain)
	srv.Shutdown(sctx)
	cancel()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	logger.Info("stopped", "sessions_total", srv.Total())
	return nil
}

// waitForStop returns why the daemon should stop, or the error that stopped
// the listener.
func waitForStop(ctx context.Context, srv *bridge.Server, proc *procOptions, served <-chan error) (string, error) {
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

// buildResolver makes the router over the configured targets and token
// files. A token file that cannot be read stops the start; one with bad
// lines is logged and its good lines are used, as later edits will be.
func buildResolver(st *settings, logger *slog.Logger) (targets.Resolver, error) {
	var chain targets.Chain
	for _, tf := range st.tokens {
		f := targets.NewTokenFile(tf.Path, logger)
		if err := f.Load(); err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("token_file %q: %w", tf.Name, pe)
			}
			logger.Error("token file has errors; the lines that parsed are in use", "path", tf.Path, "err", err)
		}
		chain = append(chain, f)
	}
	var tokens targets.Resolver
	switch len(chain) {
	case 0:
	case 1:
		tokens = chain[0]
	default:
		tokens = chain
	}
	return targets.NewRouter(st.routes, tokens)
}

// checkTokenFiles reads every token file for `wsbridge check`.
func checkTokenFiles(cfg *Config) error {
	var errs []error
	for _, tf := range cfg.TokenFiles {
		if err := targets.NewTokenFile(tf.Path, nil).Load(); err != nil {
			errs = append(errs, fmt.Errorf("token_file %q: %w", tf.Name, err))
		}
	}
	return errors.Join(errs...)
}

func newLogger(st *settings, stderr io.Writer) (*slog.Logger, func(), error) {
	w, closeFn := stderr, func() {}
	if st.logFile != "" {
		f, err := os.OpenFile(st.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("log file: %w", err)
		}
		w, closeFn = f, func() { f.Close() }
	}
	ho := &slog.HandlerOptions{Level: st.logLevel}
	var h slog.Handler = slog.NewTextHandler(w, ho)
	if st.logJSON {
		h = slog.NewJSONHandler(w, ho)
	}
	return slog.New(h), closeFn, nil
}
