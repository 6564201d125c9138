// Command wsbridge bridges WebSocket clients (noVNC, web terminals, kiosks)
// to the TCP and Unix-socket targets its configuration names. It takes
// websockify's command line unchanged, or a bridge.hcl file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/hashicorp/hcl/v2"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/service"
)

// version is stamped by the build: -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// errReported means the error has been printed already (diagnostics).
var errReported = errors.New("reported")

func exitCode(err error, stderr io.Writer) int {
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		fmt.Fprintf(stderr, "wsbridge: %v\n", err)
		return ee.code
	case errors.Is(err, errReported):
		return 2
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "wsbridge: %v\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "wsbridge: %v\n", err)
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return serve(ctx, embedded, &procOptions{}, stderr)
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "reload":
		return cmdReload(args[1:], stdout, stderr)
	case "service":
		return cmdService(ctx, args[1:], stdout, stderr)
	case "connect":
		return cmdConnect(ctx, args[1:], os.Stdin, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "wsbridge %s\n", buildVersion())
		return nil
	case "help", "-h", "-help", "--help":
		return cmdHelp(args[1:], stdout)
	}
	_, proc, err := parseWebsockify(args)
	if err != nil {
		return err
	}
	// A reload reads the command line again: token files, certificates
	// and credentials are re-read, the options stay.
	return serve(ctx, func() (*Config, *source, hcl.Diagnostics) {
		cfg, _, err := parseWebsockify(args)
		if err != nil {
			return nil, nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid command line", Detail: err.Error()}}
		}
		return cfg, nil, nil
	}, proc, stderr)
}

// embedded loads the embedded defaults.
func embedded() (*Config, *source, hcl.Diagnostics) { return embeddedConfig(), nil, nil }

func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; the flag package has printed any mistake, which
// then exits with status 2.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return errReported
	}
	return err
}

const runUsage = `usage: wsbridge run [-config FILE]

Runs the bridge with the configuration in FILE, or on the embedded
defaults (listen 127.0.0.1:6080, target 127.0.0.1:5900) without -config.
SIGHUP (or wsbridge reload) re-reads FILE; SIGINT or SIGTERM drains
sessions and exits.

`

func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	path, err := configFlag("run", runUsage, args, stderr)
	if err != nil {
		return err
	}
	if path == "" {
		return serve(ctx, embedded, &procOptions{}, stderr)
	}
	return serve(ctx, fileLoader(path), &procOptions{}, stderr)
}

// fileLoader loads bridge.hcl from path, at start and on every reload.
func fileLoader(path string) loader {
	return func() (*Config, *source, hcl.Diagnostics) {
		cfg, src, diags := loadConfig(path)
		if diags.HasErrors() && cfg != nil {
			// Report the values' problems too, so one run shows them all.
			_, more := validate(cfg, src)
			diags = append(diags, more...)
		}
		return cfg, src, diags
	}
}

const reloadUsage = `usage: wsbridge reload [-config FILE | -pid-file FILE]

Asks the running wsbridge to re-read its configuration (SIGHUP to the
process whose ID is in the pid_file that FILE names, or in -pid-file).
The daemon logs what changed, or why it refused the new configuration.
Under systemd, systemctl reload wsbridge does the same. On Windows,
wsbridge reload without flags sends the wsbridge service "parameters
changed" through the service control manager (as an administrator).

`

func cmdReload(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("reload", reloadUsage, stderr)
	path := fs.String("config", "", "bridge.hcl `file` whose pid_file to read")
	pidFile := fs.String("pid-file", "", "`file` holding the process ID")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if runtime.GOOS == "windows" && fs.NArg() == 0 && *path == "" && *pidFile == "" {
		if err := service.Reload(); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "asked the wsbridge service to reload; the event log says what changed")
		return nil
	}
	if fs.NArg() > 0 || (*path == "") == (*pidFile == "") {
		return usagef("reload takes -config FILE or -pid-file FILE")
	}
	if *path != "" {
		cfg, _, err := configFrom(*path, stderr)
		if err != nil {
			return err
		}
		if cfg.PIDFile == "" {
			return usagef("%s sets no pid_file, so the running wsbridge cannot be found: use -pid-file, or systemctl reload", *path)
		}
		*pidFile = cfg.PIDFile
	}
	data, err := os.ReadFile(*pidFile)
	if err != nil {
		return fmt.Errorf("is wsbridge running? %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("%s does not hold a process ID", *pidFile)
	}
	if err := signalReload(pid); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "asked wsbridge (process %d) to reload; its log says what changed\n", pid)
	return nil
}

const checkUsage = `usage: wsbridge check [-config FILE]

Validates FILE (or the embedded defaults) and prints the effective
configuration, or every problem with file:line:col, exiting with status 2.

`

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	cfg, src, err := configCommand("check", checkUsage, args, stderr)
	if err != nil {
		return err
	}
	if _, err := checkConfig(cfg, src, stderr); err != nil {
		return err
	}
	stdout.Write(formatConfig(cfg))
	return nil
}

// checkConfig validates a loaded configuration and loads the files it
// names (certificates, credentials, token sources) without serving, as
// `wsbridge check` and `wsbridge service install` do. Problems are
// printed to stderr.
func checkConfig(cfg *Config, src *source, stderr io.Writer) (*settings, error) {
	st, diags := validate(cfg, src)
	if diags.HasErrors() {
		printDiags(stderr, diags)
		return nil, errReported
	}
	discard := slog.New(slog.DiscardHandler)
	if _, err := buildDoor(st, &bridge.Options{}, discard, nil); err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return nil, errReported
	}
	_, closeSources, err := buildResolver(context.Background(), st, discard, true)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return nil, errReported
	}
	closeSources()
	return st, nil
}

// configCommand parses the flags of a command that takes -config FILE and
// nothing else, and loads the configuration.
func configCommand(name, usage string, args []string, stderr io.Writer) (*Config, *source, error) {
	path, err := configFlag(name, usage, args, stderr)
	if err != nil {
		return nil, nil, err
	}
	return configFrom(path, stderr)
}

// configFlag parses -config FILE, a command's only flag.
func configFlag(name, usage string, args []string, stderr io.Writer) (string, error) {
	fs := newFlagSet(name, usage, stderr)
	path := fs.String("config", "", "bridge.hcl `file`")
	if err := parseFlags(fs, args); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", usagef("%s takes no arguments, got %q", name, fs.Args())
	}
	return *path, nil
}

// configFrom loads path, or returns the embedded defaults for "".
func configFrom(path string, stderr io.Writer) (*Config, *source, error) {
	if path == "" {
		return embeddedConfig(), nil, nil
	}
	cfg, src, diags := loadConfig(path)
	if diags.HasErrors() {
		if cfg != nil {
			// Report the values' problems too, so one run shows them all.
			_, more := validate(cfg, src)
			diags = append(diags, more...)
		}
		printDiags(stderr, diags)
		return nil, nil, errReported
	}
	return cfg, src, nil
}

// printDiags writes one line per diagnostic: file:line:col, the summary and
// the detail, so that editors and people can jump to it.
func printDiags(w io.Writer, diags hcl.Diagnostics) {
	for _, d := range diags {
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		if r := d.Subject; r != nil {
			fmt.Fprintf(w, "%s:%d:%d: %s\n", r.Filename, r.Start.Line, r.Start.Column, msg)
		} else {
			fmt.Fprintf(w, "%s\n", msg)
		}
	}
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		return v
	}
	return "(unknown)"
}

const helpText = `wsbridge bridges WebSocket clients to TCP and Unix-socket targets.

usage:
  wsbridge                          run on the embedded defaults:
                                    listen 127.0.0.1:6080, target 127.0.0.1:5900
  wsbridge run [-config FILE]       run with a bridge.hcl file
  wsbridge check [-config FILE]     validate and print the effective configuration
  wsbridge reload -config FILE      ask the running wsbridge to re-read FILE
  wsbridge service COMMAND          install, uninstall, start, stop, restart,
                                    status or print the OS service
  wsbridge connect [flags] URL      the client half: standard input and output,
                                    or -listen PORT, to a ws:// or wss:// bridge
                                    (an OpenSSH ProxyCommand)
  wsbridge version                  print the version
  wsbridge help [websockify]        this text, or the websockify command line
  wsbridge [websockify options] [source_addr:]source_port target_addr:target_port
                                    run with websockify's command line

Each command takes -h.
`

const websockifyHelp = `wsbridge speaks websockify's command line:

  wsbridge [options] [source_addr:]source_port target_addr:target_port
  wsbridge [options] --token-plugin PLUGIN --token-source SOURCE [--allow CIDR[:PORTS]]... [source_addr:]source_port
  wsbridge [options] --unix-target FILE [source_addr:]source_port

A bare source_port listens on every IPv4 address (every address with -6).

Supported:
  -v, --verbose            debug logging
  --log-file FILE          log to FILE instead of standard error
  --web DIR                serve static files (noVNC) from DIR; never lists directories
  --file-only              accepted: wsbridge never lists directories
  -6, --prefer-ipv6        a bare source_port listens on every IPv6 and IPv4 address
  --unix-target FILE       bridge to a Unix socket
  --token-plugin PLUGIN --token-source SOURCE, where PLUGIN and SOURCE are:
      TokenFile, ReadOnlyTokenFile   a token file or a directory of them
      TokenFileName                  a directory: file name = token, content = target
      TokenRedis                     host[:port[:db[:password[:namespace]]]]
      JWTTokenApi                    a key file (PEM public key, or HMAC secret)
      JSONTokenApi, BaseTokenAPI     a URL with %s where the token goes
      UnixDomainSocketDirectory      a directory of Unix sockets; token = socket name
  --target-config FILE     same as --token-plugin TokenFile --token-source FILE
  --host-token             read the token from the Host header, not ?token=
  --allow CIDR[:PORTS]     (wsbridge's own, repeatable) the targets a token plugin
                           may name, such as 10.0.0.0/8:5900-5999 or [::1]:22;
                           checked against the address actually dialled. Without
                           it every target the plugin names is reachable, as in
                           websockify, and wsbridge warns at start
  --cert FILE [--key FILE] serve TLS (./self.pem when it exists and --cert is not
                           given); plain HTTP shares the port unless --ssl-only.
                           Certificates are reloaded on change and on SIGHUP
  --ssl-only               refuse plain HTTP
  --verify-client --cafile FILE
                           require client certificates signed by FILE's CAs
  --ssl-version V          minimum TLS version: default, tlsv1_2, tlsv1_3
                           (tlsv1_1 warns: TLS 1.2 is the floor)
  --ssl-ciphers LIST       accepted with a warning: only AEAD suites are offered
  --ssl-target             TLS toward the target, verified with the system's CAs
  --auth-plugin BasicHTTPAuth --auth-source USER:PASSWORD
  --auth-plugin ExpectOrigin --auth-source "ORIGIN ..."
  --auth-plugin ClientCertCNAuth --auth-source "CN ..."
  --web-auth               the web root needs the same authentication
  --heartbeat SECONDS      ping interval (wsbridge pings every 25s by default, and
                           also ends sessions whose pong is 15s late)
  --idle-timeout SECONDS   exit after SECONDS without any session
  --timeout SECONDS        exit SECONDS after start (draining live sessions)
  --run-once               exit after the first session ends
  --libserver              accepted, with a warning: it has no effect
  --unix-listen FILE [--unix-listen-mode OCTAL]
                           listen on a Unix socket (mode 0600 by default)
  --inetd                  serve the listening socket on standard input
  --syslog SERVER          log to syslog: a socket path, or host:port (UDP)
  --legacy-syslog          RFC 3164 syslog headers instead of RFC 5424
  --record FILE            record every session to FILE.1, FILE.2, ... in
                           websockify's format (noVNC's player replays it);
                           100 MiB per file, 1 GiB in the directory
`

func cmdHelp(args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "websockify" {
		io.WriteString(stdout, websockifyHelp)
		var yet, not []string
		for _, o := range websockifyOptions {
			switch o.status {
			case later:
				yet = append(yet, o.names[0])
			case never:
				not = append(not, o.names[0]+" ("+o.why+")")
			}
		}
		if len(yet) > 0 {
			fmt.Fprintf(stdout, "\nNot supported yet (refused with a message): %s\n", strings.Join(yet, " "))
		}
		fmt.Fprintf(stdout, "\nNot supported:\n  %s\n", strings.Join(not, "\n  "))
		return nil
	}
	io.WriteString(stdout, helpText)
	return nil
}
