package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wsbridge/wsbridge/internal/loadtest"
)

const compareUsage = `usage: wsbridge-bench compare [-wsbridge PATH] [-websockify PATH] [flags]

Starts this tool's TCP target, a plain Go TCP relay (a copy of this
tool's binary, so that the relay does not share the load generator's
code pages; io.Copy both ways), Debian's websockify and wsbridge
(default settings except the per-address limits, which would refuse one
client's thousands of sessions), measures them and direct TCP, and
prints one Markdown table with the ratios and the targets of issue 9.

Each endpoint first moves -warmup-bytes each way. Then the endpoints take
turns, in an order rotated each round, at -rounds rounds of throughput
runs; then each has its memory run; then -rounds rounds of setup-rate
runs, in turns again. The table has each measure's median over the
rounds (the log has every run): this machine's slow and fast phases last
a minute or more, and an endpoint measured in one phase only would give
ratios that say more about the machine than about the endpoints.

Latency comes last, and three ways on Linux with two CPUs or more:
where the scheduler puts the processes, everything pinned to one CPU,
and the bridge pinned to a CPU of its own. Whether two processes'
threads share a CPU moves a bridge's echo time more than the bridge
itself does. In each placement the processes first echo unmeasured for
-latency-settle (Go fits GOMAXPROCS to a process's CPUs about a second
after they change); then each endpoint has -latency-sessions sessions,
the endpoints taking turns, with its -count round trips spread over
them, and pooled.

websockify forks a process per session, so its memory run opens
-websockify-sessions sessions (its PSS is summed over its processes) and
its throughput runs move -websockify-bytes. The Go relay's io.Copy
splices through a pipe in each direction, six descriptors a session, so
its memory run opens -relay-sessions.

`

func cmdCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("compare", compareUsage, stderr)
	wsbridge := fs.String("wsbridge", "bin/wsbridge", "the wsbridge `binary`")
	websockify := fs.String("websockify", "websockify", "the websockify `program`; \"\" leaves it out")
	wsfySessions := fs.Int("websockify-sessions", 200, "idle sessions in websockify's memory run")
	relaySessions := fs.Int("relay-sessions", 3000, "idle sessions in the Go relay's memory run (io.Copy splices through a pipe per direction: 6 descriptors a session)")
	var wsfyBytes int64 = 256 << 20
	fs.Func("websockify-bytes", "bytes per websockify throughput run (default 256MiB)", func(s string) error {
		n, err := parseBytes(s)
		wsfyBytes = n
		return err
	})
	latSessions := fs.Int("latency-sessions", 40, "sessions per endpoint and placement in the latency runs: each endpoint's -count round trips are spread over them")
	settleTime := fs.Duration("latency-settle", settleFor, "how long each endpoint echoes, unmeasured, once the processes are on a placement's CPUs")
	var p plan
	p.flags(fs, 3)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := p.defaults(); err != nil {
		return err
	}
	if *latSessions < 1 {
		return errors.New("-latency-sessions must be at least 1")
	}
	log := stderr

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	target := loadtest.NewTarget(ln)
	defer target.Close()
	dir, err := os.MkdirTemp("", "wsbridge-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	self, err := os.Executable()
	if err != nil {
		return err
	}
	var entries []entry
	entries = append(entries, entry{e: &loadtest.Endpoint{Name: "direct TCP", Addr: target.Addr()}, p: p})

	relayBin, err := copyFile(self, filepath.Join(dir, "relay"))
	if err != nil {
		return err
	}
	relayAddr, relay, err := startProgram(ctx, dir, "relay", relayBin, "relay", "-listen", "{addr}", "-target", target.Addr())
	if err != nil {
		return err
	}
	defer stopProgram(relay)
	rp := p
	rp.sessions = min(p.sessions, *relaySessions)
	entries = append(entries, entry{e: &loadtest.Endpoint{Name: "Go TCP relay", Addr: relayAddr}, proc: &loadtest.Process{PID: relay.Process.Pid}, p: rp})

	if *websockify != "" {
		wp := p
		wp.bytes = min(p.bytes, wsfyBytes)
		wp.sessions = *wsfySessions
		addr, cmd, err := startProgram(ctx, dir, "websockify", *websockify, "{addr}", target.Addr())
		if err != nil {
			return err
		}
		defer stopProgram(cmd)
		entries = append(entries, entry{e: &loadtest.Endpoint{Name: "websockify", URL: "ws://" + addr + "/"}, proc: &loadtest.Process{PID: cmd.Process.Pid}, p: wp})
	}

	cfg := filepath.Join(dir, "bridge.hcl")
	port, err := freePort()
	if err != nil {
		return err
	}
	bridgeAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	err = os.WriteFile(cfg, []byte(fmt.Sprintf(`# wsbridge's defaults, but one client address may open every session.
listen = %q
limits {
  per_ip_sessions = 0
  per_ip_rate     = 0
}
target "bench" {
  address = %q
}
`, bridgeAddr, target.Addr())), 0o600)
	if err != nil {
		return err
	}
	_, bridge, err := startProgram(ctx, dir, "wsbridge", *wsbridge, "run", "-config", cfg)
	if err != nil {
		return err
	}
	defer stopProgram(bridge)
	if err := waitListen(ctx, bridgeAddr, bridge); err != nil {
		return err
	}
	wp := p
	wp.base64 = true
	entries = append(entries, entry{e: &loadtest.Endpoint{Name: "wsbridge", URL: "ws://" + bridgeAddr + "/"}, proc: &loadtest.Process{PID: bridge.Process.Pid}, p: wp, log: filepath.Join(dir, "wsbridge.log")})

	for i := range entries {
		entries[i].p.tests = maps.Clone(entries[i].p.tests)
		delete(entries[i].p.tests, "latency")
	}
	results, err := measureAll(ctx, entries, log)
	if err != nil {
		return err
	}
	// Latency last: pinning a process leaves it on one CPU for a second
	// or so after it is put back (see settleFor).
	var places []placement
	var latencies map[string]map[string]loadtest.Latency
	if p.tests["latency"] {
		fmt.Fprintf(log, "== latency, %d sessions an endpoint and placement\n", *latSessions)
		places = placements()
		latencies, err = latencyRounds(ctx, entries, places, p.count, *latSessions, *settleTime, log)
		if err != nil {
			return err
		}
	}
	if errs := target.Errors(); len(errs) > 0 {
		return fmt.Errorf("the target saw: %v", errs[0])
	}
	printTable(stdout, results, places, latencies, &p, *websockify != "", args)
	return nil
}

// entry is one endpoint compare measures.
type entry struct {
	e    *loadtest.Endpoint
	proc *loadtest.Process // nil for direct TCP
	p    plan
	log  string // the program's output, shown when a run fails
}

// placement is where a latency run's processes run: tool is the CPU of
// this tool (its client and its target), bridge the CPU of the bridge and
// its children; -1 is where the scheduler puts them.
type placement struct {
	name         string
	tool, bridge int
}

// placements are the scheduler's choice and, on Linux with two CPUs or
// more, everything on one CPU and the bridge on a CPU of its own. Pinned
// runs take the kernel's choice of CPUs out of the comparison: on the
// 2-vCPU machine of BENCHMARKS.md, whether the two processes' threads
// share a CPU moved the p50 of the relay and of wsbridge alike between
// about 40 and 150 µs from one session to the next (a wake-up across CPUs
// costs tens of µs in a VM), and the ratio of two runs with it.
func placements() []placement {
	ps := []placement{{"", -1, -1}}
	if cpus := loadtest.CPUs(); len(cpus) >= 2 {
		ps = append(ps, placement{"all on one CPU", cpus[0], cpus[0]}, placement{"bridge on a CPU of its own", cpus[0], cpus[1]})
	}
	return ps
}

// latencyRounds measures the endpoints' 64-byte echoes, one placement
// after another. In each placement, once the processes are on their CPUs
// and have settled there (see settle), every endpoint has rounds sessions
// of count/rounds round trips, the endpoints taking turns in an order
// rotated each round; each endpoint's round trips are pooled. The result
// is by placement name, then endpoint name.
//
// Many short sessions, not one long one: even with the CPUs pinned, one
// session's p50 may be 40 µs and the next one's 80 µs (a session's
// goroutines, sockets and buffers land differently each time), so a
// ratio of two single sessions says little. Taking turns puts the
// endpoints under the same conditions of a shared, noisy machine. Direct
// TCP has no bridge to give a CPU of its own, and is left out of such a
// placement.
func latencyRounds(ctx context.Context, entries []entry, places []placement, count, rounds int, settleFor time.Duration, log io.Writer) (map[string]map[string]loadtest.Latency, error) {
	per := max(1, count/rounds)
	out := map[string]map[string]loadtest.Latency{}
	for _, pl := range places {
		var in []entry
		for _, en := range entries {
			if en.proc != nil || pl.tool == pl.bridge {
				in = append(in, en)
			}
		}
		restore, err := pinAll(in, pl)
		if err != nil {
			return nil, fmt.Errorf("latency (%s): %w", placeName(pl), err)
		}
		times, err := func() (map[string][]time.Duration, error) {
			defer restore()
			if err := settle(ctx, in, pl, settleFor, log); err != nil {
				return nil, err
			}
			times := map[string][]time.Duration{}
			err := inTurns(in, rounds, func(en entry) error {
				t, err := loadtest.EchoTimes(ctx, en.e, per, 64)
				if err != nil {
					return fmt.Errorf("%s latency (%s): %w", en.e.Name, placeName(pl), err)
				}
				times[en.e.Name] = append(times[en.e.Name], t...)
				return nil
			})
			return times, err
		}()
		if err != nil {
			return nil, err
		}
		out[pl.name] = map[string]loadtest.Latency{}
		for _, en := range in {
			l := loadtest.Percentiles(times[en.e.Name])
			out[pl.name][en.e.Name] = l
			fmt.Fprintf(log, "%s: 64-byte echo, %s: p50 %v p90 %v p99 %v (%d round trips in %d sessions)\n",
				en.e.Name, placeName(pl), l.P50, l.P90, l.P99, l.Count, rounds)
		}
	}
	return out, nil
}

func placeName(pl placement) string {
	if pl.name == "" {
		return "where the scheduler puts them"
	}
	return pl.name
}

// pinAll puts this tool and the endpoints' processes on pl's CPUs, and
// returns what puts them back.
func pinAll(entries []entry, pl placement) (restore func(), err error) {
	var undo []func() error
	restore = func() {
		for _, u := range undo {
			u()
		}
	}
	if pl.tool >= 0 {
		u, err := loadtest.Pin(pl.tool, os.Getpid())
		if err != nil {
			return nil, err
		}
		undo = append(undo, u)
	}
	for _, en := range entries {
		if pl.bridge < 0 || en.proc == nil {
			continue
		}
		u, err := en.proc.Pin(pl.bridge)
		if err != nil {
			restore()
			return nil, err
		}
		undo = append(undo, u)
	}
	return restore, nil
}

// settleFor is how long each endpoint echoes, by default, before a
// placement's measured rounds (-latency-settle). Go's runtime (1.25 on) fits GOMAXPROCS to the CPUs a
// process may use, checking about once a second while it is busy: a
// pinned Go process (this tool, the relay, wsbridge) runs with two Ps on
// one CPU until then, and its change is a stop of the world. The echoes
// keep each one busy past that.
const settleFor = 1500 * time.Millisecond

// settle has every endpoint echo for d, and reports whether this tool's
// GOMAXPROCS came to fit its CPUs.
func settle(ctx context.Context, entries []entry, pl placement, d time.Duration, log io.Writer) error {
	for _, en := range entries {
		for start := time.Now(); time.Since(start) < d; {
			if _, err := loadtest.EchoTimes(ctx, en.e, 200, 64); err != nil {
				return fmt.Errorf("%s latency (%s), settling: %w", en.e.Name, placeName(pl), err)
			}
		}
	}
	want := runtime.NumCPU()
	if pl.tool >= 0 {
		want = 1
	}
	if got := runtime.GOMAXPROCS(0); got != want && os.Getenv("GOMAXPROCS") == "" {
		fmt.Fprintf(log, "note: this tool's GOMAXPROCS is %d on %d CPUs (%s)\n", got, want, placeName(pl))
	}
	return nil
}

// copyFile copies the executable src to dst.
func copyFile(src, dst string) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	return dst, os.WriteFile(dst, b, 0o700)
}

// unusual returns the lines of a wsbridge log other than sessions that
// ended with 1000, at most 40.
func unusual(path string) string {
	b, _ := os.ReadFile(path)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.Contains(l, "close_code=1000") {
			out = append(out, l)
		}
	}
	return strings.Join(out[max(0, len(out)-40):], "\n") + "\n"
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startProgram runs a bridge with {addr} in its arguments replaced by a
// free loopback address, its output in dir/name.log, and waits until it
// listens there (when {addr} is used).
func startProgram(ctx context.Context, dir, name, program string, args ...string) (string, *exec.Cmd, error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	uses := false
	for i, a := range args {
		if a == "{addr}" {
			args[i], uses = addr, true
		}
	}
	out, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(program, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start %s: %w", name, err)
	}
	out.Close()
	if uses {
		if err := waitListen(ctx, addr, cmd); err != nil {
			stopProgram(cmd)
			b, _ := os.ReadFile(filepath.Join(dir, name+".log"))
			return "", nil, fmt.Errorf("%s: %w\n%s", name, err, b)
		}
	}
	return addr, cmd, nil
}

func waitListen(ctx context.Context, addr string, cmd *exec.Cmd) error {
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s after 15s", addr)
}

func stopProgram(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// printTable prints the results with their ratios and the targets; lat is
// latencyRounds' for places.
func printTable(w io.Writer, rs map[string]*result, places []placement, lat map[string]map[string]loadtest.Latency, p *plan, withWebsockify bool, args []string) {
	names := []string{"direct TCP", "Go TCP relay"}
	if withWebsockify {
		names = append(names, "websockify")
	}
	names = append(names, "wsbridge")
	host, _ := os.Hostname()
	fmt.Fprintf(w, "%s, %s/%s, %d CPUs, %s; wsbridge-bench compare %s\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), host, strings.Join(args, " "))
	fmt.Fprintf(w, "| measure | %s | target | met |\n", strings.Join(names, " | "))
	fmt.Fprintf(w, "|---%s|---|---|\n", strings.Repeat("|---", len(names)))
	ws, relay, direct, wsfy := rs["wsbridge"], rs["Go TCP relay"], rs["direct TCP"], rs["websockify"]
	row := func(label string, val func(r *result) (float64, bool), format, target string, met string) {
		cells := make([]string, len(names))
		for i, n := range names {
			v, ok := 0.0, false
			if r := rs[n]; r != nil {
				v, ok = val(r)
			}
			if ok {
				cells[i] = fmt.Sprintf(format, v)
			} else {
				cells[i] = "–"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", label, strings.Join(cells, " | "), target, met)
	}
	tp := func(key string) func(r *result) (float64, bool) {
		return func(r *result) (float64, bool) { t, ok := r.throughput[key]; return t.MBps(), ok }
	}
	cpu := func(key string) func(r *result) (float64, bool) {
		return func(r *result) (float64, bool) {
			t, ok := r.throughput[key]
			return t.CPUPerGB(), ok && r.name != "direct TCP"
		}
	}
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	for _, dir := range []string{"c2t", "t2c"} {
		label := map[string]string{"c2t": "client to target", "t2c": "target to client"}[dir]
		r1 := ratio(ws.throughput[dir].MBps(), direct.throughput[dir].MBps())
		target := fmt.Sprintf("≥ 0.5× direct: %.2f×", r1)
		met := r1 >= 0.5
		if dir == "c2t" && wsfy != nil {
			r2 := ratio(ws.throughput[dir].MBps(), wsfy.throughput[dir].MBps())
			target += fmt.Sprintf("; ≥ 6× websockify: %.1f×", r2)
			met = met && r2 >= 6
		}
		row("throughput "+label+", binary, MB/s", tp(dir), "%.0f", target, yes(met))
	}
	for _, dir := range []string{"c2t", "t2c"} {
		label := map[string]string{"c2t": "client to target", "t2c": "target to client"}[dir]
		row("throughput "+label+", base64, MB/s", tp(dir+" base64"), "%.0f", "", "")
	}
	for _, key := range []string{"c2t", "t2c", "c2t base64", "t2c base64"} {
		limit := 0.40
		if strings.HasSuffix(key, "base64") {
			limit = 1.2
		}
		v := ws.throughput[key].CPUPerGB()
		mode := "binary"
		if strings.HasSuffix(key, "base64") {
			mode = "base64"
		}
		label := map[string]string{"c2t": "client to target", "t2c": "target to client"}[strings.Fields(key)[0]]
		row(fmt.Sprintf("bridge CPU s per GB, %s, %s", label, mode), cpu(key), "%.3f", fmt.Sprintf("≤ %.2f", limit), yes(v <= limit))
	}
	for _, pl := range places {
		byName := lat[pl.name]
		echo := func(q func(l loadtest.Latency) time.Duration) func(r *result) (float64, bool) {
			return func(r *result) (float64, bool) {
				l, ok := byName[r.name]
				return float64(q(l).Microseconds()), ok && l.Count > 0
			}
		}
		where := ""
		if pl.name != "" {
			where = ", " + pl.name
		}
		wl, rl := byName["wsbridge"], byName["Go TCP relay"]
		p50 := ratio(float64(wl.P50), float64(rl.P50))
		p99 := ratio(float64(wl.P99), float64(rl.P99))
		row("64-byte echo p50, µs"+where, echo(func(l loadtest.Latency) time.Duration { return l.P50 }), "%.0f", fmt.Sprintf("≤ 1.05× relay: %.2f×", p50), yes(p50 <= 1.05))
		row("64-byte echo p90, µs"+where, echo(func(l loadtest.Latency) time.Duration { return l.P90 }), "%.0f", "", "")
		row("64-byte echo p99, µs"+where, echo(func(l loadtest.Latency) time.Duration { return l.P99 }), "%.0f", fmt.Sprintf("≤ 1.2× relay: %.2f×", p99), yes(p99 <= 1.2))
	}
	s1 := ratio(ws.setup.PerSecond(), relay.setup.PerSecond())
	target := fmt.Sprintf("≥ 0.5× relay: %.2f×", s1)
	met := s1 >= 0.5
	if wsfy != nil {
		s2 := ratio(ws.setup.PerSecond(), wsfy.setup.PerSecond())
		target += fmt.Sprintf("; ≥ 10× websockify: %.1f×", s2)
		met = met && s2 >= 10
	}
	row(fmt.Sprintf("sessions set up per s, %d clients", p.clients), func(r *result) (float64, bool) { return r.setup.PerSecond(), r.setup.Sessions > 0 }, "%.0f", target, yes(met))
	mem := func(r *result) (float64, bool) { return float64(r.memory.PerSession) / 1024, r.memory.Sessions > 0 }
	per := float64(ws.memory.PerSession) / 1024
	row("PSS per idle session, KiB", mem, "%.1f", fmt.Sprintf("≤ 16 KiB with 9,000: %d sessions", ws.memory.Sessions), yes(per <= 16 && ws.memory.Sessions >= 9000))
	sessions := func(r *result) (float64, bool) { return float64(r.memory.Sessions), r.memory.Sessions > 0 }
	row("idle sessions held", sessions, "%.0f", "", "")
	growth := func(r *result) (float64, bool) {
		return float64(r.memory.End-r.memory.Held) / 1024, r.memory.Sessions > 0
	}
	g := ws.memory.End - ws.memory.Held
	row(fmt.Sprintf("PSS growth while held %v, KiB", p.hold), growth, "%.0f", "none (≤ 1% of held)", yes(float64(g) <= 0.01*float64(ws.memory.Held)))
}
