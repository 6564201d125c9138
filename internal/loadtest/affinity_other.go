//go:build !linux

package loadtest

import "errors"

// Pin is for Linux only: elsewhere latency is measured where the
// scheduler puts the processes.
func Pin(cpu int, pids ...int) (restore func() error, err error) {
	return nil, errors.ErrUnsupported
}

// Pin is for Linux only, as the function Pin.
func (Process) Pin(cpu int) (restore func() error, err error) {
	return nil, errors.ErrUnsupported
}

// CPUs is empty where Pin is not supported, so that no pinned run is
// tried.
func CPUs() []int { return nil }
