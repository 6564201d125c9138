package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/wsbridge/wsbridge/service"
)

const serviceUsage = `usage: wsbridge service COMMAND [flags]

Installs and controls wsbridge as an operating-system service: systemd on
Linux (OpenRC or SysV where PID 1 is one), launchd on macOS, the service
control manager on Windows. Run it as root (an administrator on Windows).

  install [-config FILE] [-user NAME] [-user-level]
          check FILE as wsbridge check does, then install a service that
          runs "wsbridge service run -config FILE" (FILE made absolute) in
          FILE's directory, as NAME. Refused if FILE does not pass check,
          and where no init system runs (a container).
  uninstall                 stop the service and remove it
  start | stop | restart    control it; stop drains sessions first
  status                    running, stopped, or not installed (exit 1)
  print [-config FILE] [-user NAME] [-user-level] [-os OS]
        [-executable PATH] [-installed-config PATH]
          print the unit, plist or Windows settings install would write,
          for this OS or OS (linux, darwin, windows)
  run -config FILE          what the service manager runs
  configure                 Windows: set restart-on-failure and delayed
                            start on the service the MSI registered

FILE defaults to ` + "%s" + `.
NAME defaults to wsbridge on Linux (created as a system user if missing),
nobody for a macOS daemon, NT AUTHORITY\LocalService on Windows.
-user-level installs a macOS LaunchAgent for the current user instead.

`

// defaultServiceConfig is where packages put bridge.hcl.
func defaultServiceConfig() string {
	switch runtime.GOOS {
	case "windows":
		pd := os.Getenv("ProgramData")
		if pd == "" {
			pd = `C:\ProgramData`
		}
		return filepath.Join(pd, "wsbridge", "bridge.hcl")
	case "darwin":
		return "/usr/local/etc/wsbridge/bridge.hcl"
	}
	return "/etc/wsbridge/bridge.hcl"
}

func cmdService(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := fmt.Sprintf(serviceUsage, defaultServiceConfig())
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usagef("service needs a command")
	}
	name, args := args[0], args[1:]
	fs := newFlagSet("service "+name, usage, stderr)
	var config, user, goos, executable, installed *string
	var userLevel *bool
	switch name {
	case "install", "print", "run":
		config = fs.String("config", "", "bridge.hcl `file` (default "+defaultServiceConfig()+")")
	}
	switch name {
	case "install", "print":
		user = fs.String("user", "", "the account the service runs as")
		userLevel = fs.Bool("user-level", false, "macOS: a LaunchAgent for the current user")
	case "uninstall", "start", "stop", "restart", "status", "configure":
		userLevel = fs.Bool("user-level", false, "macOS: the current user's LaunchAgent")
	case "run":
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usagef("unknown service command %q", name)
	}
	if name == "print" {
		goos = fs.String("os", runtime.GOOS, "render for this `OS`: linux, darwin or windows")
		executable = fs.String("executable", "", "the wsbridge `path` to record (default: this program)")
		installed = fs.String("installed-config", "", "the bridge.hcl `path` to record (default: -config made absolute)")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("service %s takes no arguments, got %q", name, fs.Args())
	}
	if config != nil && *config == "" {
		*config = defaultServiceConfig()
	}

	switch name {
	case "run":
		return serviceRun(ctx, *config, stderr)
	case "install", "print":
		spec, err := serviceSpec(*config, *user, *userLevel, stderr)
		if err != nil {
			return err
		}
		if name == "print" {
			spec.OS = *goos
			if *executable != "" {
				spec.Executable = *executable
			}
			if *installed != "" {
				spec.Config = *installed
			}
			return printService(stdout, spec)
		}
		m, err := service.NewManager(spec)
		if err != nil {
			return err
		}
		if err := m.Install(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "installed the wsbridge service (%s), running %s as %q\nstart it with: wsbridge service start\n", m.Platform(), spec.Config, spec.Account())
		return nil
	}

	m, err := service.NewManager(service.Spec{UserLevel: *userLevel})
	if err != nil {
		return err
	}
	if name == "status" {
		st, err := m.Status()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wsbridge service (%s): %s\n", m.Platform(), st)
		return nil
	}
	act := map[string]struct {
		do   func() error
		done string
	}{
		"configure": {m.Configure, "configured"},
		"uninstall": {m.Uninstall, "uninstalled"},
		"start":     {m.Start, "started"},
		"stop":      {m.Stop, "stopped"},
		"restart":   {m.Restart, "restarted"},
	}[name]
	if err := act.do(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wsbridge service: %s\n", act.done)
	return nil
}

// serviceSpec checks the configuration as wsbridge check does and
// describes the service that runs it.
func serviceSpec(path, user string, userLevel bool, stderr io.Writer) (service.Spec, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return service.Spec{}, err
	}
	if _, err := os.Stat(abs); err != nil {
		return service.Spec{}, fmt.Errorf("configuration: %w (copy bridge.hcl there, or give -config)", err)
	}
	refused := func() error {
		fmt.Fprintf(stderr, "wsbridge: %s does not pass wsbridge check; nothing installed\n", abs)
		return errReported
	}
	cfg, src, err := configFrom(abs, stderr)
	if err != nil {
		return service.Spec{}, refused()
	}
	// Relative paths in the file are read from its directory when the
	// service runs, so check them from there too.
	wd, _ := os.Getwd()
	if err := os.Chdir(filepath.Dir(abs)); err == nil {
		defer os.Chdir(wd)
	}
	st, err := checkConfig(cfg, src, stderr)
	if err != nil {
		return service.Spec{}, refused()
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return service.Spec{}, fmt.Errorf("find this program: %w", err)
	}
	return specFor(st, exe, abs, user, userLevel), nil
}

// specFor says what the service needs from the system for these settings.
func specFor(st *settings, exe, config, user string, userLevel bool) service.Spec {
	spec := service.Spec{
		Executable:  exe,
		Config:      config,
		User:        user,
		UserLevel:   userLevel,
		StopTimeout: st.drain + closeBudget,
	}
	addrs := []string{}
	for _, l := range st.listeners {
		switch l.network {
		case "tcp":
			addrs = append(addrs, l.address)
		case "unix":
			spec.Writable = append(spec.Writable, absDir(config, l.address))
		}
	}
	if st.admin != nil {
		addrs = append(addrs, st.admin.listen)
	}
	for _, a := range addrs {
		if _, port, err := net.SplitHostPort(a); err == nil {
			if n, err := strconv.Atoi(port); err == nil && n > 0 && n < 1024 {
				spec.LowPort = true
			}
		}
	}
	for _, f := range []string{st.pidFile, st.logFile} {
		if f != "" {
			spec.Writable = append(spec.Writable, absDir(config, f))
		}
	}
	if st.recording != nil {
		spec.Writable = append(spec.Writable, absPath(config, st.recording.Dir))
	}
	slices.Sort(spec.Writable)
	spec.Writable = slices.Compact(spec.Writable)
	return spec
}

// closeBudget is what a stop takes after the drain: closing handshakes
// and the last log lines.
const closeBudget = 15 * time.Second

func absPath(config, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(filepath.Dir(config), p)
}

func absDir(config, file string) string { return filepath.Dir(absPath(config, file)) }

func printService(w io.Writer, spec service.Spec) error {
	var out string
	var err error
	switch spec.OS {
	case "linux":
		out, err = spec.Unit()
	case "darwin":
		out, err = spec.Plist()
	case "windows":
		if err = spec.Check(); err == nil {
			out = spec.Windows().String()
		}
	default:
		return usagef("-os %q: want linux, darwin or windows", spec.OS)
	}
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, out)
	return err
}

// serviceRun is the service manager's entry: the daemon in the config
// file's directory, stopped through the manager, logging to its log.
func serviceRun(ctx context.Context, path string, stderr io.Writer) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if err := os.Chdir(filepath.Dir(abs)); err != nil {
		return fmt.Errorf("configuration directory: %w", err)
	}
	return service.Run(ctx, func(ctx context.Context, reload <-chan struct{}) error {
		return serve(ctx, fileLoader(abs), &procOptions{reload: reload, serviceLog: service.EventLog}, stderr)
	})
}
