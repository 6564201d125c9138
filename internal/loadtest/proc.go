package loadtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Process is a bridge under test, seen through /proc: a process and the
// children it forks (websockify serves each session in one).
type Process struct{ PID int }

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// stat returns a process's parent, its own CPU time and that of the
// children it has waited for.
func stat(pid int) (ppid int, cpu, waited time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	// The command name is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state ppid ... utime(14) stime(15) cutime(16) cstime(17),
	// counted from 1 with the pid as field 1 and the name as field 2.
	if len(f) < 15 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	num := func(k int) int64 { v, _ := strconv.ParseInt(f[k-3], 10, 64); return v }
	ppid = int(num(4))
	cpu = time.Duration(num(14)+num(15)) * clockTick
	waited = time.Duration(num(16)+num(17)) * clockTick
	return ppid, cpu, waited, nil
}

// PIDs returns the process and its live descendants.
func (p Process) PIDs() []int {
	entries, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, _, _, err := stat(pid); err == nil {
			parent[pid] = pp
		}
	}
	in := map[int]bool{p.PID: true}
	for changed := true; changed; {
		changed = false
		for pid, pp := range parent {
			if !in[pid] && in[pp] {
				in[pid] = true
				changed = true
			}
		}
	}
	pids := make([]int, 0, len(in))
	for pid := range in {
		pids = append(pids, pid)
	}
	return pids
}

// CPU is the CPU time (user and system) the process and its children
// have used: the live ones' own time, and that of those it has reaped.
func (p Process) CPU() (time.Duration, error) {
	var total time.Duration
	for _, pid := range p.PIDs() {
		_, cpu, waited, err := stat(pid)
		if err != nil {
			if pid == p.PID {
				return 0, err
			}
			continue // a child that ended meanwhile
		}
		total += cpu
		if pid == p.PID {
			total += waited
		}
	}
	return total, nil
}

// PSS is the proportional set size of the process and its children, in
// bytes: each shared page counted once across them all.
func (p Process) PSS() (int64, error) {
	var total int64
	for _, pid := range p.PIDs() {
		kb, err := pssOf(pid)
		if err != nil {
			if pid == p.PID {
				return 0, err
			}
			continue
		}
		total += kb << 10
	}
	return total, nil
}

func pssOf(pid int) (int64, error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "smaps_rollup"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("smaps_rollup of %d: no Pss line", pid)
}
