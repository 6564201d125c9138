package loadtest

import (
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Pin moves every thread of the processes pids onto the one CPU cpu
// (threads they start meanwhile inherit it; so do processes they fork).
// restore gives every thread the processes then have the CPUs its process
// had before. wsbridge-bench compare pins its latency runs to take the
// kernel's choice of CPUs out of the comparison.
func Pin(cpu int, pids ...int) (restore func() error, err error) {
	saved := make(map[int]unix.CPUSet, len(pids))
	restore = func() error {
		var first error
		for pid, set := range saved {
			if err := setAll(pid, &set); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	var one unix.CPUSet
	one.Set(cpu)
	for _, pid := range pids {
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(pid, &set); err != nil {
			restore()
			return nil, fmt.Errorf("CPUs of process %d: %w", pid, err)
		}
		saved[pid] = set
		if err := setAll(pid, &one); err != nil {
			restore()
			return nil, err
		}
	}
	return restore, nil
}

// setAll sets the CPUs of every thread of pid, again until a pass finds
// no thread it has not set (a thread started meanwhile copies the set of
// the thread that started it, which may not have been set yet).
func setAll(pid int, set *unix.CPUSet) error {
	done := map[int]bool{}
	for pass := 0; pass < 10; pass++ {
		entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		if err != nil {
			return fmt.Errorf("threads of process %d: %w", pid, err)
		}
		fresh := false
		for _, e := range entries {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			fresh = true
			// A thread may end between the listing and the call.
			if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
				return fmt.Errorf("CPUs of thread %d of process %d: %w", tid, pid, err)
			}
			done[tid] = true
		}
		if !fresh {
			return nil
		}
	}
	return fmt.Errorf("process %d keeps starting threads", pid)
}

// CPUs lists the CPUs this process may run on, in the numbering Pin
// takes.
func CPUs() []int {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) != nil {
		return nil
	}
	var cpus []int
	for cpu := range 8 * int(unsafe.Sizeof(set)) {
		if set.IsSet(cpu) {
			cpus = append(cpus, cpu)
		}
	}
	return cpus
}
