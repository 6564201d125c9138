// Command wsbridge-bench measures WebSocket-to-TCP bridges side by side:
// wsbridge, websockify, a plain Go TCP relay and direct TCP. It brings its
// own TCP target and checks every byte.
//
//	wsbridge-bench compare -wsbridge bin/wsbridge [-websockify websockify]
//	wsbridge-bench run -url ws://127.0.0.1:6080/ -pid PID -target 127.0.0.1:5999
//	wsbridge-bench relay -listen 127.0.0.1:7000 -target 127.0.0.1:5999
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wsbridge/wsbridge/internal/loadtest"
)

const usage = `usage:
  wsbridge-bench compare [flags]   start wsbridge, websockify, a Go TCP relay
                                   and measure them and direct TCP in one run
  wsbridge-bench run [flags]       measure one bridge that is already running
                                   and bridges to this tool's -target
  wsbridge-bench relay -listen ADDR -target ADDR
                                   the plain Go TCP relay (io.Copy both ways)

Each takes -h.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "wsbridge-bench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "compare":
		return cmdCompare(ctx, args[1:], stdout, stderr)
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "relay":
		return cmdRelay(args[1:], stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// newFlagSet is a command's flags, with its usage text before them.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	return fs
}

func cmdRelay(args []string, stderr io.Writer) error {
	fs := newFlagSet("relay", "usage: wsbridge-bench relay -listen ADDR -target ADDR\n\n", stderr)
	listen := fs.String("listen", "127.0.0.1:0", "`address` to listen on")
	target := fs.String("target", "", "`address` to relay to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "listening %s\n", ln.Addr())
	return loadtest.Relay(ln, *target)
}

// plan is what a run measures.
type plan struct {
	bytes    int64
	warmup   int64 // moved each way, unmeasured, before the throughput runs
	count    int
	sessions int
	hold     time.Duration
	clients  int
	setupFor time.Duration
	parallel int
	base64   bool
	rounds   int // throughput and setup-rate runs of each endpoint (see measureAll)
	tests    map[string]bool
}

// flags registers the plan's flags; rounds is -rounds' default.
func (p *plan) flags(fs *flag.FlagSet, rounds int) {
	fs.IntVar(&p.rounds, "rounds", rounds, "how many times each throughput and setup-rate run is done, the\nendpoints taking turns; the results are the medians")
	fs.Func("bytes", "bytes per throughput run, such as 1GB or 256MB (default 1GB)", func(s string) error {
		n, err := parseBytes(s)
		p.bytes = n
		return err
	})
	p.warmup = 64 << 20
	fs.Func("warmup-bytes", "bytes moved each way, checked but not measured, before the\nthroughput runs: a fresh process's first transfer also pays for its\nstart (buffers, heap, threads); 0 for none (default 64MiB)", func(s string) error {
		if s == "0" {
			p.warmup = 0
			return nil
		}
		n, err := parseBytes(s)
		p.warmup = n
		return err
	})
	fs.IntVar(&p.count, "count", 20000, "round trips in the latency run")
	fs.IntVar(&p.sessions, "sessions", 9000, "idle sessions in the memory run")
	fs.DurationVar(&p.hold, "hold", 60*time.Second, "how long the idle sessions are held")
	fs.IntVar(&p.clients, "clients", 16, "concurrent clients in the setup-rate run")
	fs.DurationVar(&p.setupFor, "setup-for", 5*time.Second, "length of the setup-rate run")
	fs.IntVar(&p.parallel, "parallel", 64, "sessions opened at once in the memory run")
	fs.Func("tests", "comma-separated: throughput, latency, memory, setup (default all);\nc2t or t2c is throughput one way only", func(s string) error {
		p.tests = map[string]bool{}
		for _, t := range strings.Split(s, ",") {
			switch t = strings.TrimSpace(t); t {
			case "throughput":
				p.tests["c2t"], p.tests["t2c"] = true, true
			case "c2t", "t2c", "latency", "memory", "setup":
				p.tests[t] = true
			default:
				return fmt.Errorf("unknown test %q", t)
			}
		}
		return nil
	})
}

func (p *plan) defaults() error {
	if p.rounds < 1 {
		return errors.New("-rounds must be at least 1")
	}
	if p.bytes == 0 {
		p.bytes = 1 << 30
	}
	if p.tests == nil {
		p.tests = map[string]bool{"c2t": true, "t2c": true, "latency": true, "memory": true, "setup": true}
	}
	return nil
}

func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseFloat(num, 64)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("bad size %q", s)
			}
			return int64(n * float64(u.mult)), nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n, nil
}

// result is everything measured for one endpoint; zero values were not
// measured.
type result struct {
	name       string
	throughput map[string]loadtest.Throughput // "c2t", "t2c", "c2t base64", "t2c base64"
	latency    loadtest.Latency               // run's; compare's are by placement (latencyRounds)
	memory     loadtest.Memory
	setup      loadtest.Setup
}

// measureAll runs each entry's plan: its warm-up, then the throughput
// runs of every entry, then each one's latency (run only) and memory runs,
// then the setup-rate runs of every entry. The throughput and setup-rate
// runs are done p.rounds times (the first entry's plan says how many), the
// entries taking turns in an order rotated each round, and each measure's
// median over the rounds is the result: a shared machine has slow and
// fast phases of a minute or more, and an endpoint measured only in one
// of them would make its ratios to the others say more about the machine
// than about the endpoints.
func measureAll(ctx context.Context, entries []entry, log io.Writer) (map[string]*result, error) {
	results := map[string]*result{}
	for _, en := range entries {
		results[en.e.Name] = &result{name: en.e.Name, throughput: map[string]loadtest.Throughput{}}
	}
	rounds := max(1, entries[0].p.rounds)
	for _, en := range entries {
		if err := warmUp(ctx, en, log); err != nil {
			return nil, failedAt(en, err)
		}
	}
	runs := map[string]map[string][]loadtest.Throughput{}
	err := inTurns(entries, rounds, func(en entry) error {
		return throughputRuns(ctx, en, runs, log)
	})
	if err != nil {
		return nil, err
	}
	for name, byKey := range runs {
		for key, ts := range byKey {
			results[name].throughput[key] = medianThroughput(ts)
		}
	}
	for _, en := range entries {
		if err := idleRuns(ctx, en, results[en.e.Name], log); err != nil {
			return nil, failedAt(en, err)
		}
	}
	setups := map[string][]loadtest.Setup{}
	err = inTurns(entries, rounds, func(en entry) error {
		if !en.p.tests["setup"] {
			return nil
		}
		s, err := loadtest.MeasureSetup(ctx, en.e, en.p.clients, en.p.setupFor)
		if err != nil {
			return fmt.Errorf("%s setup: %w", en.e.Name, err)
		}
		setups[en.e.Name] = append(setups[en.e.Name], s)
		fmt.Fprintf(log, "%s: %.0f sessions/s with %d clients\n", en.e.Name, s.PerSecond(), en.p.clients)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for name, ss := range setups {
		results[name].setup = medianSetup(ss)
		if len(ss) > 1 {
			fmt.Fprintf(log, "%s: median of %d setup runs: %.0f sessions/s\n", name, len(ss), results[name].setup.PerSecond())
		}
	}
	return results, nil
}

// inTurns calls fn for every entry, rounds times, the entries taking turns
// in an order rotated each round. An error ends it, with the failing
// entry's log when it has one.
func inTurns(entries []entry, rounds int, fn func(en entry) error) error {
	for round := range rounds {
		for i := range entries {
			en := entries[(i+round)%len(entries)]
			if err := fn(en); err != nil {
				return failedAt(en, err)
			}
		}
	}
	return nil
}

// failedAt adds to err, from en's program log, the sessions that did not
// end with 1000.
func failedAt(en entry, err error) error {
	if en.log == "" {
		return err
	}
	return fmt.Errorf("%w\n%s's log, sessions that did not end with 1000:\n%s", err, en.e.Name, unusual(en.log))
}

// warmUp moves en.p.warmup bytes each way through en, checked but not
// measured, when its plan has throughput runs.
func warmUp(ctx context.Context, en entry, log io.Writer) error {
	p := en.p
	if (!p.tests["c2t"] && !p.tests["t2c"]) || p.warmup <= 0 {
		return nil
	}
	for _, dir := range []loadtest.Direction{loadtest.ClientToTarget, loadtest.TargetToClient} {
		if _, err := loadtest.MeasureThroughput(ctx, en.e, dir, p.warmup, nil); err != nil {
			return fmt.Errorf("%s %v warm-up: %w", en.e.Name, dir, err)
		}
	}
	fmt.Fprintf(log, "%s: warmed up, %d bytes each way\n", en.e.Name, p.warmup)
	return nil
}

// throughputRuns does each of en's throughput runs once, adding them to
// runs by endpoint name and key ("c2t", "t2c", "c2t base64", ...).
func throughputRuns(ctx context.Context, en entry, runs map[string]map[string][]loadtest.Throughput, log io.Writer) error {
	p := en.p
	var dirs []loadtest.Direction
	if p.tests["c2t"] {
		dirs = append(dirs, loadtest.ClientToTarget)
	}
	if p.tests["t2c"] {
		dirs = append(dirs, loadtest.TargetToClient)
	}
	modes := []bool{false}
	if p.base64 {
		modes = append(modes, true)
	}
	for _, b64 := range modes {
		ep := *en.e
		ep.Base64 = b64
		for _, dir := range dirs {
			t, err := loadtest.MeasureThroughput(ctx, &ep, dir, p.bytes, en.proc)
			if err != nil {
				return fmt.Errorf("%s %v throughput: %w", en.e.Name, dir, err)
			}
			key := map[loadtest.Direction]string{loadtest.ClientToTarget: "c2t", loadtest.TargetToClient: "t2c"}[dir]
			if b64 {
				key += " base64"
			}
			if runs[en.e.Name] == nil {
				runs[en.e.Name] = map[string][]loadtest.Throughput{}
			}
			runs[en.e.Name][key] = append(runs[en.e.Name][key], t)
			fmt.Fprintf(log, "%s: %s %s: %.0f MB/s, %.3f CPU s/GB\n", en.e.Name, dir, modeName(b64), t.MBps(), t.CPUPerGB())
		}
	}
	return nil
}

// idleRuns does en's latency run (run's; compare measures latency by
// placement, latencyRounds) and its memory run. Memory comes before the
// setup-rate runs: those leave tens of thousands of loopback connections
// in TIME_WAIT, which the thousands of idle sessions would otherwise
// compete with for ports.
func idleRuns(ctx context.Context, en entry, r *result, log io.Writer) error {
	p, e := en.p, en.e
	if p.tests["latency"] {
		l, err := loadtest.MeasureLatency(ctx, e, p.count, 64)
		if err != nil {
			return fmt.Errorf("%s latency: %w", e.Name, err)
		}
		r.latency = l
		fmt.Fprintf(log, "%s: 64-byte echo p50 %v p90 %v p99 %v (%d round trips)\n", e.Name, l.P50, l.P90, l.P99, l.Count)
	}
	if p.tests["memory"] && en.proc != nil && p.sessions > 0 {
		m, err := loadtest.MeasureIdleMemory(ctx, e, p.sessions, p.hold, en.proc, p.parallel)
		if err != nil {
			return fmt.Errorf("%s memory: %w", e.Name, err)
		}
		r.memory = m
		fmt.Fprintf(log, "%s: %d idle sessions: PSS %s before, %s held, %s after %v: %s per session\n",
			e.Name, m.Sessions, kib(m.Before), kib(m.Held), kib(m.End), m.Hold, kib(m.PerSession))
	}
	return nil
}

// medianThroughput is the runs' median time and median CPU time, each on
// its own, for runs of the same bytes (see median).
func medianThroughput(ts []loadtest.Throughput) loadtest.Throughput {
	el := make([]time.Duration, len(ts))
	cpu := make([]time.Duration, len(ts))
	for i, t := range ts {
		el[i], cpu[i] = t.Elapsed, t.CPU
	}
	return loadtest.Throughput{Bytes: ts[0].Bytes, Elapsed: median(el), CPU: median(cpu)}
}

// medianSetup is the setup run of the median rate; for an even count, the
// two middle runs pooled.
func medianSetup(ss []loadtest.Setup) loadtest.Setup {
	s := slices.Clone(ss)
	slices.SortFunc(s, func(a, b loadtest.Setup) int { return cmp.Compare(a.PerSecond(), b.PerSecond()) })
	lo, hi := s[(len(s)-1)/2], s[len(s)/2]
	if len(s)%2 == 1 {
		return lo
	}
	return loadtest.Setup{Sessions: lo.Sessions + hi.Sessions, Elapsed: lo.Elapsed + hi.Elapsed}
}

// median is the middle value; for an even count, the mean of the two
// middle ones.
func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return (s[(len(s)-1)/2] + s[len(s)/2]) / 2
}

func modeName(b64 bool) string {
	if b64 {
		return "base64"
	}
	return "binary"
}

func kib(n int64) string { return fmt.Sprintf("%.1f KiB", float64(n)/1024) }

const runUsage = `usage: wsbridge-bench run (-url ws://HOST:PORT/PATH | -tcp HOST:PORT) -target HOST:PORT [-pid PID] [flags]

Measures one bridge that is already running. This tool's TCP target
listens on -target: configure the bridge to bridge there. -pid is the
bridge's process, for CPU time and PSS (its children are counted too).

`

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", runUsage, stderr)
	url := fs.String("url", "", "the bridge's ws:// `URL`")
	tcp := fs.String("tcp", "", "a TCP relay's `address` instead of a WebSocket bridge")
	targetAddr := fs.String("target", "127.0.0.1:5999", "`address` for this tool's target")
	pid := fs.Int("pid", 0, "the bridge's process `ID` (0: no CPU or memory figures)")
	var p plan
	p.flags(fs, 1)
	fs.BoolVar(&p.base64, "base64", false, "also measure throughput with the base64 subprotocol")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := p.defaults(); err != nil {
		return err
	}
	if (*url == "") == (*tcp == "") {
		return errors.New("run takes -url or -tcp")
	}
	ln, err := net.Listen("tcp", *targetAddr)
	if err != nil {
		return err
	}
	target := loadtest.NewTarget(ln)
	defer target.Close()
	en := entry{e: &loadtest.Endpoint{Name: "bridge", URL: *url, Addr: *tcp}, p: p}
	if *pid > 0 {
		en.proc = &loadtest.Process{PID: *pid}
	}
	_, err = measureAll(ctx, []entry{en}, stdout)
	if errs := target.Errors(); len(errs) > 0 && err == nil {
		err = fmt.Errorf("the target saw: %v", errs[0])
	}
	return err
}
