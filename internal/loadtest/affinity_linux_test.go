package loadtest

import (
	"math/bits"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// TestMain lets the test binary be a Go process with several threads to
// pin (TestPin).
func TestMain(m *testing.M) {
	if os.Getenv("LOADTEST_IDLE") != "" {
		time.Sleep(time.Minute)
		return
	}
	os.Exit(m.Run())
}

// TestPin pins every thread of a running Go process to one CPU and puts
// them all back.
func TestPin(t *testing.T) {
	cpus := CPUs()
	if len(cpus) == 0 {
		t.Fatal("CPUs: none")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LOADTEST_IDLE=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	// The runtime starts its threads (sysmon, the GC's workers) at once;
	// wait for more than one.
	for deadline := time.Now().Add(5 * time.Second); len(threads(t, pid)) < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("process %d has %d threads", pid, len(threads(t, pid)))
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := cpuSets(t, pid)
	cpu := cpus[len(cpus)-1]
	restore, err := Pin(cpu, pid)
	if err != nil {
		t.Fatal(err)
	}
	for tid, set := range cpuSets(t, pid) {
		if set.count() != 1 || !set.isSet(cpu) {
			t.Errorf("thread %d: %d CPUs after Pin(%d), want only %d", tid, set.count(), cpu, cpu)
		}
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	for tid, set := range cpuSets(t, pid) {
		if want := before[pid]; set != want {
			t.Errorf("thread %d: CPUs %v after restore, want %v", tid, set, want)
		}
	}
	if _, err := Pin(cpu, 1<<30); err == nil {
		t.Error("Pin of a process that does not exist succeeded")
	}
	if _, err := (Process{PID: 1 << 30}).Pin(cpu); err == nil {
		t.Error("Process.Pin of a process that does not exist succeeded")
	}
	// A descendant that has ended since it was listed (websockify's
	// children come and go) has nothing to pin; the process is pinned.
	restore, err = pin(cpu, []int{pid, 1 << 30}, func(q int) bool { return q != pid })
	if err != nil {
		t.Fatalf("pin with a descendant that has ended: %v", err)
	}
	for tid, set := range cpuSets(t, pid) {
		if set.count() != 1 || !set.isSet(cpu) {
			t.Errorf("thread %d: %d CPUs after pin, want only %d", tid, set.count(), cpu)
		}
	}
	if err := restore(); err != nil {
		t.Errorf("restore after a descendant that has ended: %v", err)
	}
	restore, err = (Process{PID: pid}).Pin(cpu)
	if err != nil {
		t.Fatalf("Process.Pin: %v", err)
	}
	if err := restore(); err != nil {
		t.Error(err)
	}
	if _, err := Pin(-1, pid); err == nil {
		t.Error("Pin to CPU -1 succeeded")
	}
	if got := CPUs(); len(got) != runtime.NumCPU() {
		t.Errorf("CPUs() = %v; runtime.NumCPU() = %d", got, runtime.NumCPU())
	}
}

func (s *cpuSet) count() int {
	n := 0
	for _, w := range s {
		n += bits.OnesCount64(w)
	}
	return n
}

func threads(t *testing.T, pid int) []int {
	entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	var tids []int
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids
}

func cpuSets(t *testing.T, pid int) map[int]cpuSet {
	sets := map[int]cpuSet{}
	for _, tid := range threads(t, pid) {
		var set cpuSet
		if err := getAffinity(tid, &set); err != nil {
			t.Fatal(err)
		}
		sets[tid] = set
	}
	return sets
}
