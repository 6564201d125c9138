//go:build !unix

package bridge

import "errors"

// No descriptors are read or written directly here.
func readFD(uintptr, []byte) (int, error)  { return 0, errors.ErrUnsupported }
func writeFD(uintptr, []byte) (int, error) { return 0, errors.ErrUnsupported }
