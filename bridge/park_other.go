//go:build !linux

package bridge

import (
	"errors"
	"syscall"
)

// parker is Linux's (epoll); elsewhere an idle session's target reader
// keeps its goroutine.
type parker struct{}

var idle parker

var errNoParking = errors.New("no parking on this system")

func (*parker) park(syscall.RawConn, parked) (uint64, error) { return 0, errNoParking }
func (*parker) repark(syscall.RawConn, uint64, parked) error { return errNoParking }
func (*parker) cancel(uint64) bool                           { return false }
func (*parker) unpark(syscall.RawConn)                       {}

// canPark says that this system has no parker.
const canPark = false
