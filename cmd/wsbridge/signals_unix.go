//go:build unix

package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// hangups delivers SIGHUP, the reload signal, until stop is called. While
// it runs, SIGHUP no longer ends the process.
func hangups() (<-chan os.Signal, func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup, func() { signal.Stop(hup) }
}

// signalReload asks the wsbridge with process ID pid to reload.
func signalReload(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("signal process %d: %w", pid, err)
	}
	return nil
}

// withUmask runs fn with the process's umask set to mask. The umask is
// process-wide: fn runs at start, before any other goroutine makes files.
func withUmask(mask int, fn func() error) error {
	old := syscall.Umask(mask)
	defer syscall.Umask(old)
	return fn()
}
