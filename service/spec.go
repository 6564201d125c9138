package service

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	kservice "github.com/kardianos/service"
)

// Name is the service's name everywhere: the systemd unit wsbridge.service,
// the launchd label, the Windows service and its event log source.
const Name = "wsbridge"

// The service's names for people, on every platform.
const (
	displayName = "wsbridge WebSocket bridge"
	description = "WebSocket to TCP bridge for noVNC, web terminals and kiosks"
)

// Spec is what to install: enough to write the unit, plist or service entry
// without reading bridge.hcl again.
type Spec struct {
	// Executable is the absolute path of the wsbridge binary.
	Executable string
	// Config is the absolute path of bridge.hcl. The service runs
	// "wsbridge service run -config Config" in Config's directory, so
	// relative paths in the file mean the same as for `wsbridge check`
	// run there.
	Config string
	// User is the account the service runs as. Empty means the platform's
	// default: "wsbridge" on Linux, "nobody" for a macOS system daemon,
	// "NT AUTHORITY\LocalService" on Windows. A macOS user agent runs as
	// the user who installs it and ignores User.
	User string
	// UserLevel installs a macOS LaunchAgent for the current user instead
	// of a system LaunchDaemon. Only macOS has it.
	UserLevel bool
	// LowPort says the configuration listens on a TCP port below 1024: the
	// systemd unit then grants CAP_NET_BIND_SERVICE, and nothing else.
	LowPort bool
	// StopTimeout is how long the manager waits for a stop before it kills:
	// the drain timeout plus the closing handshakes. Zero means 30s.
	StopTimeout time.Duration
	// Writable lists the directories the service must write outside its
	// own state, runtime and log directories (pid_file, Unix listeners,
	// recordings, log file). systemd makes everything else read-only.
	Writable []string
	// OS is the operating system the files are for; "" is this one. Tests
	// render every platform's files on any platform.
	OS string
}

// defaultStopTimeout is used when Spec.StopTimeout is zero: the default
// drain (10s) plus room for the closing handshakes.
const defaultStopTimeout = 30 * time.Second

func (s Spec) os() string {
	if s.OS != "" {
		return s.OS
	}
	return runtime.GOOS
}

// Account returns the account the service runs as, after defaults.
func (s Spec) Account() string {
	switch {
	case s.User != "":
		return s.User
	case s.os() == "windows":
		return `NT AUTHORITY\LocalService`
	case s.os() == "darwin" && s.UserLevel:
		return ""
	case s.os() == "darwin":
		return "nobody"
	}
	return Name
}

func (s Spec) stopTimeout() time.Duration {
	if s.StopTimeout > 0 {
		return s.StopTimeout
	}
	return defaultStopTimeout
}

// Check reports what makes the spec unusable: relative paths, characters a
// unit file cannot carry, a user level where there is none.
func (s Spec) Check() error {
	var errs []error
	abs := func(what, p string) {
		// filepath.IsAbs answers for this OS; a Windows spec rendered on
		// Linux (tests) has a drive letter.
		if !filepath.IsAbs(p) && !(s.os() == "windows" && len(p) > 2 && p[1] == ':') {
			errs = append(errs, fmt.Errorf("%s %q is not an absolute path", what, p))
		}
	}
	abs("executable", s.Executable)
	abs("config", s.Config)
	for _, p := range append([]string{s.Executable, s.Config, s.User}, s.Writable...) {
		if strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '"' || r == '\\' && s.os() != "windows" }) {
			errs = append(errs, fmt.Errorf("%q: control characters, quotes and backslashes cannot go into a service file", p))
		}
	}
	for _, p := range s.Writable {
		if strings.ContainsAny(p, " \t") {
			errs = append(errs, fmt.Errorf("writable directory %q: systemd's ReadWritePaths cannot hold spaces; choose a path without them", p))
		}
	}
	if s.UserLevel && s.os() != "darwin" {
		errs = append(errs, errors.New("-user-level is for macOS launchd agents; on Linux and Windows wsbridge is a system service"))
	}
	return errors.Join(errs...)
}

// Arguments are what the service manager passes to Executable.
func (s Spec) Arguments() []string { return []string{"service", "run", "-config", s.Config} }

func (s Spec) workDir() string {
	if s.os() == "windows" {
		// filepath.Dir on Linux does not know backslashes.
		if i := strings.LastIndexAny(s.Config, `\/`); i > 0 {
			return s.Config[:i]
		}
	}
	return filepath.Dir(s.Config)
}

// kardianos returns the library's configuration for this spec, with the
// systemd and launchd templates and the Windows options.
func (s Spec) kardianos() (*kservice.Config, error) {
	unit, err := s.unitTemplate()
	if err != nil {
		return nil, err
	}
	w := s.Windows()
	return &kservice.Config{
		Name:             Name,
		DisplayName:      displayName,
		Description:      description,
		Executable:       s.Executable,
		Arguments:        s.Arguments(),
		UserName:         s.Account(),
		WorkingDirectory: s.workDir(),
		Option: kservice.KeyValue{
			"SystemdScript":          unit,
			"LaunchdConfig":          s.plistTemplate(),
			"UserService":            s.UserLevel,
			"RunAtLoad":              true,
			"KeepAlive":              true,
			"StartType":              "automatic",
			"DelayedAutoStart":       w.DelayedAutoStart,
			"OnFailure":              "restart",
			"OnFailureDelayDuration": w.Recovery[0].String(),
			"OnFailureResetPeriod":   int(w.ResetPeriod / time.Second),
		},
	}, nil
}

// Unit returns the systemd unit that Install writes on Linux.
func (s Spec) Unit() (string, error) {
	t, err := s.unitTemplate()
	if err != nil {
		return "", err
	}
	// The keys the library passes to a systemd template (v1.3, Install).
	return Render(t, map[string]any{
		"Description":       description,
		"Path":              s.Executable,
		"Name":              Name,
		"Dependencies":      []string(nil),
		"Arguments":         s.Arguments(),
		"ChRoot":            "",
		"WorkingDirectory":  s.workDir(),
		"UserName":          s.Account(),
		"ReloadSignal":      "",
		"PIDFile":           "",
		"LogDirectory":      "/var/log",
		"OutputFileSupport": "",
		"LimitNOFILE":       "",
		"Restart":           "always",
		"SuccessExitStatus": "",
		"EnvVars":           []string(nil),
	}, systemdFuncs)
}

// Plist returns the launchd property list that Install writes on macOS.
func (s Spec) Plist() (string, error) {
	// The keys the library passes to a launchd template (v1.3, Install).
	// Logs go to the unified log through standard error; no files.
	if err := s.Check(); err != nil {
		return "", err
	}
	return Render(s.plistTemplate(), map[string]any{
		"Name":              Name,
		"Path":              s.Executable,
		"Arguments":         s.Arguments(),
		"ChRoot":            "",
		"UserName":          s.Account(),
		"WorkingDirectory":  s.workDir(),
		"KeepAlive":         "true",
		"RunAtLoad":         "true",
		"SessionCreate":     "false",
		"StandardOutPath":   "",
		"StandardErrorPath": "",
		"EnvVars":           []string(nil),
	}, launchdFuncs)
}

// unitTemplate is the systemd template with the decisions that depend on
// the configuration made: they are plain text by the time the library
// renders it, because its engine has no comparisons.
func (s Spec) unitTemplate() (string, error) {
	if err := s.Check(); err != nil {
		return "", err
	}
	caps := "CapabilityBoundingSet=\n"
	if s.LowPort {
		caps = "AmbientCapabilities=CAP_NET_BIND_SERVICE\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n"
	}
	rw := ""
	if w := slices.Compact(slices.Sorted(slices.Values(s.Writable))); len(w) > 0 {
		rw = "ReadWritePaths=" + strings.Join(w, " ") + "\n"
	}
	stop := strconv.Itoa(int(s.stopTimeout().Round(time.Second) / time.Second))
	r := strings.NewReplacer("@CAPS@\n", caps, "@RW@\n", rw, "@STOP@", stop)
	return r.Replace(systemdTemplate), nil
}

func (s Spec) plistTemplate() string {
	return strings.ReplaceAll(launchdTemplate, "@STOP@", strconv.Itoa(int(s.stopTimeout().Round(time.Second)/time.Second)))
}

// systemdTemplate is in kardianos/service v1.3's template syntax. @CAPS@,
// @RW@ and @STOP@ are filled in by unitTemplate first.
//
// Type=notify: wsbridge sends READY=1 once it listens, RELOADING=1 on
// SIGHUP and STOPPING=1 when it drains. Restart only on failure, soon: a
// clean stop (systemctl stop, or --run-once) stays stopped. The sandbox
// leaves the service its own state, runtime and log directories and the
// networks it bridges (IPv4, IPv6, Unix sockets); nothing else is writable.
const systemdTemplate = `[Unit]
Description={{Description}}
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=60
StartLimitBurst=10
ConditionFileIsExecutable={{Path | cmdEscape}}

[Service]
Type=notify
NotifyAccess=main
ExecStart={{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}
ExecReload=/bin/kill -HUP $MAINPID
{{if WorkingDirectory}}WorkingDirectory={{WorkingDirectory | cmdEscape}}
{{end}}{{if UserName}}User={{UserName}}
{{end}}Restart=on-failure
RestartSec=2s
TimeoutStopSec=@STOP@
LimitNOFILE=65536
UMask=0027
RuntimeDirectory=wsbridge
StateDirectory=wsbridge
LogsDirectory=wsbridge
@RW@
@CAPS@
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
{{range EnvVars}}{{.}}
{{end}}
[Install]
WantedBy=multi-user.target
`

// launchdTemplate is in kardianos/service v1.3's template syntax.
// KeepAlive restarts wsbridge whenever it exits (launchd throttles it to
// once every 10 seconds); RunAtLoad starts it at boot (or login, for an
// agent). ProcessType Interactive keeps macOS from slowing a bridge that
// someone is looking through.
const launchdTemplate = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>{{Name | html}}</string>
	<key>ProgramArguments</key>
	<array>
		<string>{{Path | html}}</string>
{{range Arguments}}		<string>{{. | html}}</string>
{{end}}	</array>
{{if UserName}}	<key>UserName</key>
	<string>{{UserName | html}}</string>
{{end}}{{if WorkingDirectory}}	<key>WorkingDirectory</key>
	<string>{{WorkingDirectory | html}}</string>
{{end}}	<key>RunAtLoad</key>
	<{{RunAtLoad}}/>
	<key>KeepAlive</key>
	<{{KeepAlive}}/>
	<key>ProcessType</key>
	<string>Interactive</string>
	<key>ExitTimeOut</key>
	<integer>@STOP@</integer>
	<key>SoftResourceLimits</key>
	<dict>
		<key>NumberOfFiles</key>
		<integer>65536</integer>
	</dict>
</dict>
</plist>
`
