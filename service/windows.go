package service

import (
	"fmt"
	"strings"
	"time"
)

// WindowsSettings is the service entry Install creates on Windows, in the
// service control manager's terms.
type WindowsSettings struct {
	Name        string
	DisplayName string
	Description string
	// CommandLine is the image path the SCM stores: the quoted executable
	// and its arguments, all absolute (services start in System32).
	CommandLine string
	Account     string
	// StartType is "automatic"; DelayedAutoStart starts it after the boot
	// rush, once the network is more likely up.
	StartType        string
	DelayedAutoStart bool
	// Recovery is the wait before each restart after a failure: the first,
	// the second, and every later one. ResetPeriod forgets failures after
	// that long without one.
	Recovery    []time.Duration
	ResetPeriod time.Duration
	// RecoveryOnExitCode applies Recovery when the service stops itself
	// with an error, not only when the process dies: wsbridge reports why
	// it stopped and exits 1.
	RecoveryOnExitCode bool
	// EventLogSource is where the service's logs go, unless bridge.hcl
	// names a log file.
	EventLogSource string
}

// Windows returns the Windows service settings for the spec.
func (s Spec) Windows() WindowsSettings {
	args := []string{quoteWindows(s.Executable)}
	for _, a := range s.Arguments() {
		args = append(args, quoteWindows(a))
	}
	return WindowsSettings{
		Name:               Name,
		DisplayName:        displayName,
		Description:        description,
		CommandLine:        strings.Join(args, " "),
		Account:            s.Account(),
		StartType:          "automatic",
		DelayedAutoStart:   true,
		Recovery:           []time.Duration{5 * time.Second, 10 * time.Second, 30 * time.Second},
		ResetPeriod:        24 * time.Hour,
		RecoveryOnExitCode: true,
		EventLogSource:     Name,
	}
}

// String lists the settings one per line, for review and golden files.
func (w WindowsSettings) String() string {
	var b strings.Builder
	line := func(k string, v any) { fmt.Fprintf(&b, "%-20s %v\n", k+":", v) }
	line("Name", w.Name)
	line("DisplayName", w.DisplayName)
	line("Description", w.Description)
	line("CommandLine", w.CommandLine)
	line("Account", w.Account)
	line("StartType", w.StartType)
	line("DelayedAutoStart", w.DelayedAutoStart)
	var rec []string
	for _, d := range w.Recovery {
		rec = append(rec, "restart after "+d.String())
	}
	line("Recovery", strings.Join(rec, ", "))
	line("ResetPeriod", w.ResetPeriod)
	line("RecoveryOnExitCode", w.RecoveryOnExitCode)
	line("EventLogSource", w.EventLogSource)
	return b.String()
}

// quoteWindows quotes an argument as the SCM's CreateService caller does
// (x/sys/windows/svc/mgr with syscall.EscapeArg), so that
// CommandLineToArgvW reads it back unchanged.
func quoteWindows(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"") {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	slashes := 0
	for _, r := range s {
		switch r {
		case '\\':
			slashes++
		case '"':
			// Backslashes before a quote are doubled, and the quote escaped.
			b.WriteString(strings.Repeat(`\`, slashes+1))
			slashes = 0
		default:
			slashes = 0
		}
		b.WriteRune(r)
	}
	// Trailing backslashes are doubled so they do not escape the closing quote.
	b.WriteString(strings.Repeat(`\`, slashes))
	b.WriteByte('"')
	return b.String()
}
