package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/wsbridge/wsbridge/internal/systemd"
)

// newLogger makes the logger the settings ask for: text or JSON, to
// standard error, a file or syslog; under the Windows service manager,
// the event log unless a file or syslog is named. On standard error under systemd
// (JOURNAL_STREAM), text lines get the journal's "<N>" priority prefix
// and no time stamp, which the journal adds itself.
func newLogger(st *settings, level *slog.LevelVar, stderr io.Writer, serviceLog func() (func(slog.Level, string) error, error)) (*slog.Logger, func(), error) {
	w, closeFn := stderr, func() {}
	journal := false
	if st.syslog == "" && st.logFile == "" && serviceLog != nil {
		sink, err := serviceLog()
		if err != nil {
			return nil, nil, fmt.Errorf("service log: %w", err)
		}
		if sink != nil {
			// The event carries the time and the level itself.
			return slog.New(newLineHandler(level, false, sink)), closeFn, nil
		}
	}
	switch {
	case st.syslog != "":
		sw, err := dialSyslog(st.syslog)
		if err != nil {
			return nil, nil, fmt.Errorf("log.syslog: %w", err)
		}
		return slog.New(newSyslogHandler(sw, level, st.syslogLegacy)), func() { sw.Close() }, nil
	case st.logFile != "":
		f, err := os.OpenFile(st.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("log file: %w", err)
		}
		w, closeFn = f, func() { f.Close() }
	default:
		journal = stderr == os.Stderr && systemd.JournalStream()
	}
	ho := &slog.HandlerOptions{Level: level}
	if st.logJSON {
		return slog.New(slog.NewJSONHandler(w, ho)), closeFn, nil
	}
	if journal {
		return slog.New(newJournalHandler(w, level)), closeFn, nil
	}
	return slog.New(slog.NewTextHandler(w, ho)), closeFn, nil
}

// priority is the syslog severity of a level: the journal and syslog
// both sort by it.
func priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	}
	return 7
}

// lineHandler formats each record as a text line without a time stamp
// (and without the level, unless keepLevel) and hands it to emit with its
// level: the journal and syslog put a priority before it, the Windows
// event log makes it an event of the level's type.
type lineHandler struct {
	mu    *sync.Mutex
	emit  func(slog.Level, string) error
	inner slog.Handler // a text handler writing into buf
	buf   *strings.Builder
}

func newJournalHandler(w io.Writer, level slog.Leveler) slog.Handler {
	return newLineHandler(level, true, func(l slog.Level, line string) error {
		_, err := fmt.Fprintf(w, "<%d>%s", priority(l), line)
		return err
	})
}

func newLineHandler(level slog.Leveler, keepLevel bool, emit func(slog.Level, string) error) *lineHandler {
	buf := &strings.Builder{}
	return &lineHandler{
		mu: &sync.Mutex{}, emit: emit, buf: buf,
		inner: slog.NewTextHandler(buf, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey && !keepLevel) {
				return slog.Attr{}
			}
			return a
		}}),
	}
}

func (h *lineHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *lineHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
	if err := h.inner.Handle(ctx, r); err != nil {
		return err
	}
	return h.emit(r.Level, h.buf.String())
}

func (h *lineHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.inner = h.inner.WithAttrs(attrs)
	return &c
}

func (h *lineHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.inner = h.inner.WithGroup(name)
	return &c
}
