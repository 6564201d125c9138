package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// MessageSize is what a client sends in one message: browsers and
// websockify use 64 KiB.
const MessageSize = 64 << 10

// Stall is how long a session may make no progress before the run fails
// with ErrStalled.
var Stall = 10 * time.Second

// Errors that say what the bridge did wrong.
var (
	ErrCorrupt = errors.New("loadtest: bytes changed on the way")
	ErrStalled = errors.New("loadtest: session stalled")
	ErrDropped = errors.New("loadtest: session dropped")
)

// failure names what went wrong with a session, from the error its
// connection gave.
func failure(err error, what string, done int64) error {
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %s made no progress for %v after %d bytes", ErrStalled, what, Stall, done)
	}
	return fmt.Errorf("%w: %s after %d bytes: %v", ErrDropped, what, done, err)
}

// Direction is the way bytes flow in a throughput run.
type Direction int

const (
	ClientToTarget Direction = iota
	TargetToClient
)

func (d Direction) String() string {
	if d == TargetToClient {
		return "target-to-client"
	}
	return "client-to-target"
}

// Throughput is one bulk transfer.
type Throughput struct {
	Bytes   int64
	Elapsed time.Duration
	CPU     time.Duration // the bridge's, when a process was given
}

// MBps is payload megabytes (10^6) per second.
func (t Throughput) MBps() float64 { return float64(t.Bytes) / 1e6 / t.Elapsed.Seconds() }

// CPUPerGB is the bridge's CPU seconds per GB (10^9 bytes) moved.
func (t Throughput) CPUPerGB() float64 { return t.CPU.Seconds() / (float64(t.Bytes) / 1e9) }

// MeasureThroughput moves n bytes of a checked pattern one way through one
// session, the client sending MessageSize messages, and times it from the
// first byte to the last one's arrival. proc, if not nil, is the bridge
// whose CPU time to count.
func MeasureThroughput(ctx context.Context, e *Endpoint, dir Direction, n int64, proc *Process) (Throughput, error) {
	c, err := e.open(ctx)
	if err != nil {
		return Throughput{}, err
	}
	defer c.Close()
	seed := uint64(time.Now().UnixNano())
	p := patternFor(seed)
	var cpu0 time.Duration
	if proc != nil {
		if cpu0, err = proc.CPU(); err != nil {
			return Throughput{}, err
		}
	}
	start := time.Now()
	if dir == ClientToTarget {
		err = sendPattern(c, n, seed, p)
	} else {
		err = recvPattern(c, n, seed, p)
	}
	if err != nil {
		return Throughput{}, err
	}
	t := Throughput{Bytes: n, Elapsed: time.Since(start)}
	if proc != nil {
		cpu1, err := proc.CPU()
		if err != nil {
			return Throughput{}, err
		}
		t.CPU = cpu1 - cpu0
	}
	return t, nil
}

func sendPattern(c Conn, n int64, seed uint64, p *pattern) error {
	c.SetDeadline(time.Now().Add(Stall))
	if err := c.Send(header(opSink, n, seed)); err != nil {
		return failure(err, "sending", 0)
	}
	// A binary WebSocket client sends windows of the pattern masked once
	// for the run: the tool, on the cores it shares with the bridge under
	// test, then spends no time copying and masking each message.
	ws, premasked := c.(*wsConn)
	premasked = premasked && !ws.b64
	for off := int64(0); off < n; {
		k := int(min(n-off, MessageSize))
		c.SetDeadline(time.Now().Add(Stall))
		var err error
		if premasked {
			err = ws.sendMasked(p.atMasked(off, k))
		} else {
			err = c.Send(p.at(off, k))
		}
		if err != nil {
			return failure(err, "sending", off)
		}
		off += int64(k)
	}
	c.SetDeadline(time.Now().Add(Stall))
	status := make([]byte, 1)
	if _, err := io.ReadFull(recvReader{c}, status); err != nil {
		return failure(err, "waiting for the target's count", n)
	}
	if status[0] != statusOK {
		return fmt.Errorf("%w: the target received different bytes", ErrCorrupt)
	}
	return nil
}

func recvPattern(c Conn, n int64, seed uint64, p *pattern) error {
	c.SetDeadline(time.Now().Add(Stall))
	if err := c.Send(header(opSource, n, seed)); err != nil {
		return failure(err, "sending", 0)
	}
	buf := make([]byte, MessageSize)
	for off := int64(0); off < n; {
		c.SetDeadline(time.Now().Add(Stall))
		k, err := c.Recv(buf[:min(int64(len(buf)), n-off)])
		if bad := p.check(off, buf[:k]); bad >= 0 {
			return fmt.Errorf("%w: wrong byte at offset %d", ErrCorrupt, bad)
		}
		off += int64(k)
		if err != nil && off < n {
			return failure(err, "receiving", off)
		}
	}
	return nil
}

// recvReader is a Conn as an io.Reader.
type recvReader struct{ c Conn }

func (r recvReader) Read(p []byte) (int, error) { return r.c.Recv(p) }

// Latency is the distribution of round trips.
type Latency struct {
	P50, P90, P99 time.Duration
	Count         int
}

// MeasureLatency times count round trips of size-byte echoes through one
// session, after a warm-up.
func MeasureLatency(ctx context.Context, e *Endpoint, count, size int) (Latency, error) {
	times, err := EchoTimes(ctx, e, count, size)
	if err != nil {
		return Latency{}, err
	}
	return Percentiles(times), nil
}

// EchoTimes is MeasureLatency's round trips, unsorted, for a caller that
// pools several runs.
func EchoTimes(ctx context.Context, e *Endpoint, count, size int) ([]time.Duration, error) {
	c, err := e.open(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	seed := uint64(time.Now().UnixNano())
	p := patternFor(seed)
	c.SetDeadline(time.Now().Add(Stall))
	if err := c.Send(header(opEcho, 0, 0)); err != nil {
		return nil, failure(err, "sending", 0)
	}
	got := make([]byte, size)
	warm := min(count/10, 500)
	times := make([]time.Duration, 0, count)
	for i := range warm + count {
		off := int64(i * size)
		msg := p.at(off, size)
		c.SetDeadline(time.Now().Add(Stall))
		start := time.Now()
		if err := c.Send(msg); err != nil {
			return nil, failure(err, "sending", off)
		}
		if _, err := io.ReadFull(recvReader{c}, got); err != nil {
			return nil, failure(err, "waiting for the echo", off)
		}
		rtt := time.Since(start)
		if !bytes.Equal(got, msg) {
			return nil, fmt.Errorf("%w: the echo of round trip %d differs", ErrCorrupt, i)
		}
		if i >= warm {
			times = append(times, rtt)
		}
	}
	return times, nil
}

// Percentiles sorts times and returns their p50, p90 and p99.
func Percentiles(times []time.Duration) Latency {
	if len(times) == 0 {
		return Latency{}
	}
	slices.Sort(times)
	q := func(f float64) time.Duration { return times[min(len(times)-1, int(f*float64(len(times))))] }
	return Latency{P50: q(0.50), P90: q(0.90), P99: q(0.99), Count: len(times)}
}

// Memory is what idle sessions cost the bridge.
type Memory struct {
	Sessions   int
	Before     int64         // PSS with no session, bytes
	Held       int64         // PSS once all sessions are open and idle
	End        int64         // PSS at the end of the hold
	Hold       time.Duration // how long they were held
	PerSession int64         // (End - Before) / Sessions
}

// MeasureIdleMemory opens n sessions that each echo once, holds them idle
// for hold, checks that every one still echoes, and reports the bridge's
// PSS. Sessions open `parallel` at a time.
func MeasureIdleMemory(ctx context.Context, e *Endpoint, n int, hold time.Duration, proc *Process, parallel int) (Memory, error) {
	m := Memory{Sessions: n, Hold: hold}
	var err error
	if m.Before, err = proc.PSS(); err != nil {
		return m, err
	}
	conns := make([]Conn, n)
	defer func() {
		var wg sync.WaitGroup
		for _, c := range conns {
			if c != nil {
				wg.Go(func() { c.Close() })
			}
		}
		wg.Wait()
	}()
	msg := func(i int) []byte { return []byte(fmt.Sprintf("session %8d", i)) }
	send := func(c Conn, i int) error {
		c.SetDeadline(time.Now().Add(Stall))
		if err := c.Send(msg(i)); err != nil {
			return failure(err, fmt.Sprintf("session %d sending", i), 0)
		}
		return nil
	}
	recv := func(c Conn, i int, within time.Duration) error {
		c.SetDeadline(time.Now().Add(within))
		got := make([]byte, len(msg(i)))
		if _, err := io.ReadFull(recvReader{c}, got); err != nil {
			return failure(err, fmt.Sprintf("session %d waiting for its echo", i), 0)
		}
		if !bytes.Equal(got, msg(i)) {
			return fmt.Errorf("%w: session %d's echo", ErrCorrupt, i)
		}
		return nil
	}
	if err := parallelDo(n, parallel, func(i int) error {
		c, err := e.Dial(ctx)
		if err != nil {
			return fmt.Errorf("%w: session %d: dial: %v", ErrDropped, i, err)
		}
		conns[i] = c
		c.SetDeadline(time.Now().Add(Stall))
		if err := c.Send(header(opEcho, 0, 0)); err != nil {
			return failure(err, fmt.Sprintf("session %d sending", i), 0)
		}
		if err := send(c, i); err != nil {
			return err
		}
		return recv(c, i, Stall)
	}); err != nil {
		return m, err
	}
	// Every session waits for its second echo through the hold, reading
	// as a browser does, which answers the bridge's pings: a bridge may
	// end sessions whose pongs do not come.
	echoes := make(chan error, n)
	for i, c := range conns {
		go func() { echoes <- recv(c, i, hold+time.Minute) }()
	}
	// Let the handshakes' garbage go before the first reading.
	time.Sleep(2 * time.Second)
	if m.Held, err = proc.PSS(); err != nil {
		return m, err
	}
	select {
	case <-time.After(hold):
	case <-ctx.Done():
		return m, ctx.Err()
	}
	if m.End, err = proc.PSS(); err != nil {
		return m, err
	}
	if err := parallelDo(n, parallel, func(i int) error { return send(conns[i], i) }); err != nil {
		return m, err
	}
	for range n {
		if err := <-echoes; err != nil {
			return m, err
		}
	}
	m.PerSession = (m.End - m.Before) / int64(n)
	return m, nil
}

// parallelDo runs fn(0..n-1) on `parallel` goroutines and returns the
// first error.
func parallelDo(n, parallel int, fn func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range max(parallel, 1) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n)) // stop the others
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// Setup is a session setup rate.
type Setup struct {
	Sessions int
	Elapsed  time.Duration
}

// PerSecond is sessions set up (and ended) per second.
func (s Setup) PerSecond() float64 { return float64(s.Sessions) / s.Elapsed.Seconds() }

// MeasureSetup runs `clients` loops for d, each opening a session, echoing
// one byte and closing it.
func MeasureSetup(ctx context.Context, e *Endpoint, clients int, d time.Duration) (Setup, error) {
	var u *url.URL
	if e.URL != "" {
		var err error
		if u, err = url.Parse(e.URL); err != nil {
			return Setup{}, err
		}
		if u.Scheme != "ws" {
			u = nil // wss: through the general client
		}
	}
	one := func() error {
		if u != nil {
			return setupWS(ctx, u, e.Base64)
		}
		c, err := e.open(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(Stall))
		if err := c.Send(append(header(opEcho, 0, 0), 'x')); err != nil {
			return failure(err, "sending", 0)
		}
		b := make([]byte, 1)
		if _, err := io.ReadFull(recvReader{c}, b); err != nil {
			return failure(err, "waiting for the echo", 0)
		}
		if b[0] != 'x' {
			return fmt.Errorf("%w: the echo", ErrCorrupt)
		}
		return nil
	}
	var count atomic.Int64
	start := time.Now()
	deadline := start.Add(d)
	// Each client loops until the deadline or its first error, which is
	// the run's.
	err := parallelDo(clients, clients, func(int) error {
		for time.Now().Before(deadline) {
			if err := one(); err != nil {
				return err
			}
			count.Add(1)
		}
		return nil
	})
	if err != nil {
		return Setup{}, err
	}
	return Setup{Sessions: int(count.Load()), Elapsed: time.Since(start)}, nil
}
