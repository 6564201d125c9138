package loadtest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// cpuSet is the kernel's CPU mask of sched_setaffinity(2), for 1,024
// CPUs. (DESIGN.md section 3 keeps golang.org/x/sys out of this package.)
type cpuSet [16]uint64

func (s *cpuSet) set(cpu int)        { s[cpu/64] |= 1 << (cpu % 64) }
func (s *cpuSet) isSet(cpu int) bool { return s[cpu/64]&(1<<(cpu%64)) != 0 }

func getAffinity(tid int, s *cpuSet) error {
	_, _, e := syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, uintptr(tid), unsafe.Sizeof(*s), uintptr(unsafe.Pointer(s)))
	if e != 0 {
		return e
	}
	return nil
}

func setAffinity(tid int, s *cpuSet) error {
	_, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(tid), unsafe.Sizeof(*s), uintptr(unsafe.Pointer(s)))
	if e != 0 {
		return e
	}
	return nil
}

// Pin moves every thread of the processes pids onto the one CPU cpu
// (threads they start meanwhile inherit it; so do processes they fork).
// restore gives every thread the processes then have the CPUs its process
// had before. wsbridge-bench compare pins its latency runs to take the
// kernel's choice of CPUs out of the comparison.
func Pin(cpu int, pids ...int) (restore func() error, err error) {
	return pin(cpu, pids, func(int) bool { return false })
}

// Pin pins p and its live descendants (PIDs) as Pin does. p must exist; a
// descendant that has ended since it was listed is skipped, as CPU and PSS
// skip it (websockify's children come and go).
func (p Process) Pin(cpu int) (restore func() error, err error) {
	return pin(cpu, p.PIDs(), func(pid int) bool { return pid != p.PID })
}

// pin is Pin, where a process for which mayEnd is true may have ended.
func pin(cpu int, pids []int, mayEnd func(pid int) bool) (restore func() error, err error) {
	if cpu < 0 || cpu >= 64*len(cpuSet{}) {
		return nil, fmt.Errorf("no CPU %d", cpu)
	}
	saved := make(map[int]cpuSet, len(pids))
	restore = func() error {
		var first error
		for pid, set := range saved {
			if err := setAll(pid, &set); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	var one cpuSet
	one.set(cpu)
	for _, pid := range pids {
		var set cpuSet
		if err := getAffinity(pid, &set); errors.Is(err, syscall.ESRCH) && mayEnd(pid) {
			continue
		} else if err != nil {
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
func setAll(pid int, set *cpuSet) error {
	done := map[int]bool{}
	for pass := 0; pass < 10; pass++ {
		entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		if errors.Is(err, fs.ErrNotExist) {
			return nil // the process has ended
		}
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
			if err := setAffinity(tid, set); err != nil && !errors.Is(err, syscall.ESRCH) {
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
	var set cpuSet
	if getAffinity(0, &set) != nil {
		return nil
	}
	var cpus []int
	for cpu := range 64 * len(set) {
		if set.isSet(cpu) {
			cpus = append(cpus, cpu)
		}
	}
	return cpus
}
