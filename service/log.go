package service

import (
	"log/slog"
	"strings"

	kservice "github.com/kardianos/service"
)

// EventLog returns where log lines go when this process runs under a
// manager that has a log of its own: the Windows event log (source
// "wsbridge", registered by Install), one event per line, its type from
// the line's level. Elsewhere it returns nil: standard error reaches
// journald on Linux and the unified log on macOS.
func EventLog() (func(slog.Level, string) error, error) {
	if !hasEventLog() {
		return nil, nil
	}
	s, err := kservice.New(nil, &kservice.Config{Name: Name})
	if err != nil {
		return nil, err
	}
	l, err := s.SystemLogger(nil)
	if err != nil {
		return nil, err
	}
	return eventSink(l), nil
}

// eventSink sends a line to the event log as an error, a warning or
// information.
func eventSink(l kservice.Logger) func(slog.Level, string) error {
	return func(level slog.Level, line string) error {
		line = strings.TrimSuffix(line, "\n")
		switch {
		case level >= slog.LevelError:
			return l.Error(line)
		case level >= slog.LevelWarn:
			return l.Warning(line)
		}
		return l.Info(line)
	}
}
