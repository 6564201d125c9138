// Package service installs wsbridge as an operating-system service and runs
// it under the service manager: systemd (or OpenRC/SysV where
// kardianos/service supports them) on Linux, launchd on macOS and the
// service control manager on Windows.
//
// Start with Spec: what to install (the executable, the absolute path of
// bridge.hcl, the account, what the configuration needs from the system).
// Unit, Plist and Windows render exactly what Install writes, so an
// operator (or a golden test) can read it first. Manager installs,
// removes, starts, stops and asks for the status; Install refuses where no
// init system would ever run the service (a container). Run is the other
// side: the daemon under the manager, with a context that ends on stop and
// a channel of reload requests (SIGHUP on Unix, "parameters changed" on
// Windows).
//
// The systemd unit and the launchd plist are templates in kardianos/service's
// own syntax (v1.3: {{Key}}, {{Key | fn}}, {{if}}, {{range}}), handed to
// the library as SystemdScript and LaunchdConfig. Render shows them with the
// same syntax and functions; a test checks it against the library's engine.
//
// The functions of this package may be called from any goroutine; a
// Manager is for one command at a time.
package service
