//go:build unix

package bridge

import "syscall"

// openFiles returns the process's open-files limit, or 0 when unknown. Go
// raises the soft limit to the hard one at start, so this is what the
// process can really use.
func openFiles() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 0
	}
	return int(rl.Cur)
}
