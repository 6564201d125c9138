package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestLineHandlerForEventLog: lines for the Windows event log carry
// neither time nor level (the event has both), keep With attributes, and
// follow level changes.
func TestLineHandlerForEventLog(t *testing.T) {
	var got []string
	level := new(slog.LevelVar)
	log := slog.New(newLineHandler(level, false, func(l slog.Level, line string) error {
		got = append(got, fmt.Sprintf("%v %s", l, line))
		return nil
	})).With("target", "vnc")
	log.Debug("hidden")
	log.Info("listening", "addr", "127.0.0.1:6080")
	log.Warn("refused", "reason", "origin")
	log.Error("listener", "err", errors.New("gone"))
	level.Set(slog.LevelDebug)
	log.Debug("shown")
	want := []string{
		"INFO msg=listening target=vnc addr=127.0.0.1:6080\n",
		"WARN msg=refused target=vnc reason=origin\n",
		"ERROR msg=listener target=vnc err=gone\n",
		"DEBUG msg=shown target=vnc\n",
	}
	if strings.Join(got, "") != strings.Join(want, "") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, ""), strings.Join(want, ""))
	}
}
