package service

import (
	"bytes"
	"context"
	"log/slog"
	"sync"

	kservice "github.com/kardianos/service"
)

// LogHandler returns the slog handler for the platform's service log when
// this process runs under a manager that has one of its own: the Windows
// event log (source "wsbridge", registered by Install). Elsewhere it
// returns nil: standard error reaches journald on Linux and the unified
// log on macOS.
func LogHandler(level slog.Leveler) (slog.Handler, func(), error) {
	if !hasEventLog() {
		return nil, func() {}, nil
	}
	s, err := kservice.New(nil, &kservice.Config{Name: Name})
	if err != nil {
		return nil, nil, err
	}
	l, err := s.SystemLogger(nil)
	if err != nil {
		return nil, nil, err
	}
	return newEventHandler(l, level), func() {}, nil
}

// eventHandler writes each record as one event: the text handler's line
// without time and level, which the event carries itself.
type eventHandler struct {
	mu    *sync.Mutex
	out   kservice.Logger
	level slog.Leveler
	inner slog.Handler
	buf   *bytes.Buffer
}

func newEventHandler(out kservice.Logger, level slog.Leveler) *eventHandler {
	buf := &bytes.Buffer{}
	inner := slog.NewTextHandler(buf, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{}
			}
			return a
		},
	})
	return &eventHandler{mu: &sync.Mutex{}, out: out, level: level, inner: inner, buf: buf}
}

func (h *eventHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *eventHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
	if err := h.inner.Handle(ctx, r); err != nil {
		return err
	}
	line := string(bytes.TrimSuffix(h.buf.Bytes(), []byte("\n")))
	switch {
	case r.Level >= slog.LevelError:
		return h.out.Error(line)
	case r.Level >= slog.LevelWarn:
		return h.out.Warning(line)
	}
	return h.out.Info(line)
}

func (h *eventHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.inner = h.inner.WithAttrs(as)
	return &c
}

func (h *eventHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.inner = h.inner.WithGroup(name)
	return &c
}
