//go:build !unix

package main

import (
	"errors"
	"os"
)

// hangups delivers nothing: there is no SIGHUP here. The Windows service
// reloads on the service manager's "parameters changed" control instead.
func hangups() (<-chan os.Signal, func()) { return nil, func() {} }

// signalReload cannot signal a process here.
func signalReload(int) error {
	return errors.New("there is no reload signal on this system: restart the service, or use the service manager")
}

// withUmask runs fn: there is no umask here.
func withUmask(_ int, fn func() error) error { return fn() }
