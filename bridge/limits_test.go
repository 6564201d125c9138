package bridge_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/targets"
)

// statusOf returns the status a handshake gets; a 101 session stays open
// until the test ends.
func statusOf(t testing.TB, url, path string, extra ...string) (int, string) {
	t.Helper()
	resp := rawHandshake(t, url, path, extra...)
	defer resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

func TestAdmissionLimits(t *testing.T) {
	addr := target(t, echo)
	t.Run("global", func(t *testing.T) {
		b := startBridge(t, static(addr), nil, &bridge.Options{MaxSessions: 3})
		for i := range 3 {
			if st, _ := statusOf(t, b.url, "/"); st != 101 {
				t.Fatalf("session %d: %d", i+1, st)
			}
		}
		if st, ra := statusOf(t, b.url, "/"); st != 503 || ra == "" {
			t.Fatalf("fourth session: %d, Retry-After %q; want 503 with Retry-After", st, ra)
		}
		if !strings.Contains(b.log.logs(), `reason="server at capacity"`) {
			t.Error("the refusal is not logged")
		}
	})
	t.Run("per address", func(t *testing.T) {
		b := startBridge(t, static(addr), nil, &bridge.Options{PerIPSessions: 2})
		c1, c2 := dial(t, b.url), dial(t, b.url)
		if st, _ := statusOf(t, b.url, "/"); st != 429 {
			t.Fatalf("third session from one address: %d, want 429", st)
		}
		c1.Close(websocket.StatusNormalClosure, "")
		waitFor(t, func() bool { return b.srv.Active() == 1 })
		if st, _ := statusOf(t, b.url, "/"); st != 101 {
			t.Fatalf("after one closed: %d", st)
		}
		_ = c2
		if !strings.Contains(b.log.logs(), `reason="too many sessions from this address"`) {
			t.Error("the refusal is not logged")
		}
	})
	t.Run("handshake rate", func(t *testing.T) {
		b := startBridge(t, static(addr), nil, &bridge.Options{PerIPRate: 1, PerIPBurst: 3})
		for i := range 3 {
			c := dial(t, b.url)
			c.Close(websocket.StatusNormalClosure, "")
			_ = i
		}
		if st, ra := statusOf(t, b.url, "/"); st != 429 || ra != "1" {
			t.Fatalf("fourth handshake in a burst of 3: %d, Retry-After %q; want 429, 1", st, ra)
		}
	})
	t.Run("per target and per token", func(t *testing.T) {
		routes := []targets.Route{
			{Path: "/one", Target: targets.Target{Name: "one", Network: "tcp", Address: addr, Settings: &targets.Settings{MaxSessions: 1}}},
			{Token: "tok", Target: targets.Target{Name: "tokd", Network: "tcp", Address: addr}},
		}
		b := startBridge(t, routes, nil, &bridge.Options{PerTokenSessions: 2})
		dial(t, b.url+"/one")
		if st, _ := statusOf(t, b.url, "/one"); st != 503 {
			t.Fatalf("second session of a 1-session target: %d, want 503", st)
		}
		dial(t, b.url+"/?token=tok")
		dial(t, b.url+"/?token=tok")
		if st, _ := statusOf(t, b.url, "/?token=tok"); st != 429 {
			t.Fatalf("third session of a 2-session token: %d, want 429", st)
		}
		logs := b.log.logs()
		if !strings.Contains(logs, `reason="target at capacity"`) || !strings.Contains(logs, `reason="too many sessions for this token"`) {
			t.Errorf("refusals not logged:\n%s", logs)
		}
		if strings.Contains(logs, "tok\"") || strings.Contains(logs, "=tok ") {
			t.Error("a token reached the log")
		}
	})
}

// pattern fills p with the bytes of an endless stream at offset off.
func pattern(p []byte, off int64) {
	for i := range p {
		v := off + int64(i)
		p[i] = byte(v ^ v>>8 ^ v>>16)
	}
}

// readPattern reads one message from c, checks it is the pattern at *off,
// advances *off and returns the message's length.
func readPattern(t testing.TB, c *websocket.Conn, off *int64) int {
	t.Helper()
	_, m, err := c.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, len(m))
	pattern(want, *off)
	if !bytes.Equal(m, want) {
		t.Fatalf("bytes at %d differ", *off)
	}
	*off += int64(len(m))
	return len(m)
}

// countReads reads c until it fails, adding what it read to got.
func countReads(c net.Conn, got *atomic.Int64) {
	buf := make([]byte, 256<<10)
	for {
		n, err := c.Read(buf)
		got.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// streamTarget writes the pattern to c until it fails, and counts in got
// what comes in.
func streamTarget(c net.Conn, got *atomic.Int64) {
	go countReads(c, got)
	buf := make([]byte, 32<<10)
	for off := int64(0); ; off += int64(len(buf)) {
		pattern(buf, off)
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

func TestSessionBandwidth(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 5 MB each way at 1 MB/s")
	}
	var got atomic.Int64
	sink := target(t, func(c net.Conn) { streamTarget(c, &got) })
	const rate, size = 1_000_000, 5_000_000
	b := startBridge(t, static(sink), nil, &bridge.Options{SessionBandwidthIn: rate, SessionBandwidthOut: rate})
	c := dial(t, b.url)
	ctx := t.Context()
	start := time.Now()
	var wg sync.WaitGroup
	var upTook time.Duration
	wg.Go(func() {
		msg := make([]byte, 50_000)
		for range size / len(msg) {
			if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
				t.Error(err)
				return
			}
		}
		// The last bytes are in once the target has them all.
		for got.Load() < size && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		upTook = time.Since(start)
	})
	down := 0
	off := int64(0)
	for down < size {
		down += readPattern(t, c, &off)
	}
	downTook := time.Since(start)
	c.CloseNow()
	wg.Wait()
	// 5 MB at 1 MB/s, less the first burst: about 5 s. The range leaves
	// room for a loaded machine, not for a limit that does not hold.
	for dir, took := range map[string]time.Duration{"client to target": upTook, "target to client": downTook} {
		t.Logf("%s: 5 MB in %v", dir, took.Round(time.Millisecond))
		if took < 4*time.Second || took > 8*time.Second {
			t.Errorf("%s: 5 MB at 1 MB/s took %v, want about 5s", dir, took)
		}
	}
}

// kernelHold is how many bytes the kernel may hold in flight between a
// writer and a slow reader through the bridge: two receive buffers and two
// send buffers at the most TCP's autotuning gives them (tcp_rmem and
// tcp_wmem's third fields: on this machine 32 MiB and 4 MiB), and 1 MiB
// for the bridge's own buffers. Backpressure that does not hold lets a
// writer on loopback run gigabytes ahead in the tests' seconds; one that
// holds stays within this (10 MB in most runs, 35 MB once).
func kernelHold(t *testing.T) int64 {
	most := func(file string, def int64) int64 {
		b, err := os.ReadFile(file)
		if err != nil {
			return def // not Linux
		}
		f := strings.Fields(string(b))
		n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if err != nil {
			t.Fatalf("%s: %q", file, b)
		}
		return n
	}
	return 2*most("/proc/sys/net/ipv4/tcp_rmem", 6<<20) + 2*most("/proc/sys/net/ipv4/tcp_wmem", 4<<20) + 1<<20
}

// heapBytes is the live heap as the runtime counts it after a collection.
func heapBytes() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func TestSlowClientBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("reads slowly for 20 s")
	}
	var sent atomic.Int64
	addr := target(t, func(c net.Conn) {
		go io.Copy(io.Discard, c)
		buf := make([]byte, 64<<10)
		for off := int64(0); off < 1<<30; off += int64(len(buf)) {
			pattern(buf, off)
			n, err := c.Write(buf)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	b := startBridge(t, static(addr), nil, nil)
	base := heapBytes()
	c := dial(t, b.url)
	// Read 2 MB/s for 20 s, checking every byte.
	const perTick, ticks = 200_000, 200
	off := int64(0)
	var peak uint64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := range ticks {
		<-tick.C
		for read := 0; read < perTick; {
			read += readPattern(t, c, &off)
		}
		if i%20 == 0 {
			peak = max(peak, heapBytes())
		}
	}
	grew := int64(peak) - int64(base)
	t.Logf("read %d MB in 20 s while the target offered 1 GiB and got %d MB into the sockets; heap grew %d KiB at most",
		off/1e6, sent.Load()/1e6, grew>>10)
	if grew > 16<<20 {
		t.Errorf("the heap grew by %d MiB while the client read slowly; data is queueing", grew>>20)
	}
	if sent.Load() > off+kernelHold(t) {
		t.Errorf("the target got %d bytes ahead of the client, more than the kernel's buffers hold: backpressure is not holding", sent.Load()-off)
	}
}

// TestSlowTargetBoundedMemory is the other direction: a target that reads
// 1 MB/s holds back a client that writes as fast as it can.
func TestSlowTargetBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes for 6 s")
	}
	var got atomic.Int64
	addr := target(t, func(c net.Conn) {
		buf := make([]byte, 100_000)
		for {
			n, err := c.Read(buf)
			got.Add(int64(n))
			if err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	b := startBridge(t, static(addr), nil, &bridge.Options{Linger: 100 * time.Millisecond})
	base := heapBytes()
	c := dial(t, b.url)
	var sent atomic.Int64
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Second)
	defer cancel()
	msg := make([]byte, 64<<10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c.Write(ctx, websocket.MessageBinary, msg) == nil {
			sent.Add(int64(len(msg)))
		}
	}()
	var peak uint64
	for ctx.Err() == nil {
		time.Sleep(time.Second)
		peak = max(peak, heapBytes())
	}
	<-done
	grew := int64(peak) - int64(base)
	ahead := sent.Load() - got.Load()
	t.Logf("the client wrote %d MB in 6 s, the target read %d MB; %d KiB in flight; heap grew %d KiB at most",
		sent.Load()/1e6, got.Load()/1e6, ahead>>10, grew>>10)
	// What is in flight sits in the kernel's socket buffers and one
	// message in the bridge, not in a queue.
	if ahead > kernelHold(t) {
		t.Errorf("the client got %d MiB ahead of the target, more than the kernel's buffers hold: backpressure is not holding", ahead>>20)
	}
	if grew > 16<<20 {
		t.Errorf("the heap grew by %d MiB while the target read slowly", grew>>20)
	}
}

// freezer is a loopback proxy between a client and the bridge that can
// stop forwarding, like a peer whose host vanished without a FIN.
type freezer struct {
	addr   string
	frozen atomic.Bool
	done   chan struct{} // closed at cleanup, to let frozen pipes go
}

func newFreezer(t testing.TB, to string) *freezer {
	f := &freezer{done: make(chan struct{})}
	f.addr = target(t, func(c net.Conn) {
		up, err := net.Dial("tcp", to)
		if err != nil {
			return
		}
		defer up.Close()
		go func() {
			<-f.done
			up.Close()
			c.Close()
		}()
		pipe := func(dst, src net.Conn) {
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				if f.frozen.Load() {
					// Hold the sockets open and forward nothing.
					<-f.done
					return
				}
				if err != nil {
					return
				}
				dst.Write(buf[:n])
			}
		}
		go pipe(up, c)
		pipe(c, up)
	})
	// Registered after target's cleanup, so it runs before it.
	t.Cleanup(func() { close(f.done) })
	return f
}

func TestDeadClientFoundByPong(t *testing.T) {
	b := startBridge(t, static(target(t, echo)), nil, &bridge.Options{PingInterval: 200 * time.Millisecond, PongTimeout: 300 * time.Millisecond})
	f := newFreezer(t, strings.TrimPrefix(b.url, "ws://"))
	c := dial(t, "ws://"+f.addr)
	c.Write(t.Context(), websocket.MessageBinary, []byte("hi"))
	if _, m, err := c.Read(t.Context()); err != nil || string(m) != "hi" {
		t.Fatalf("echo = %q, %v", m, err)
	}
	f.frozen.Store(true)
	start := time.Now()
	waitIdle(t, b)
	took := time.Since(start)
	if !strings.Contains(b.log.logs(), `close_reason="Pong timeout"`) {
		t.Errorf("the session did not end by its pong deadline:\n%s", b.log.logs())
	}
	t.Logf("a vanished client was found and released after %v (ping 200ms + pong 300ms)", took.Round(time.Millisecond))
	// Not a speed check: without the cut, the library's close handshake
	// and the linger would hold the session 5 s or more.
	if took > 3*time.Second {
		t.Errorf("the session outlived its pong deadline by %v", took)
	}
}

func TestDeadTargetFoundByIdle(t *testing.T) {
	f := newFreezer(t, target(t, echo))
	b := startBridge(t, static(f.addr), nil, &bridge.Options{IdleTimeout: 400 * time.Millisecond})
	c := dial(t, b.url)
	c.Write(t.Context(), websocket.MessageBinary, []byte("hi"))
	c.Read(t.Context())
	f.frozen.Store(true)
	_, err := readUntilClose(c)
	wantClose(t, err, websocket.StatusPolicyViolation, "Idle timeout")
	waitIdle(t, b)
}

// openSockets counts this process's open sockets. (Other descriptors come
// and go on their own: io.Copy between sockets keeps a pool of splice
// pipes.)
func openSockets(t testing.TB) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd here")
	}
	n := 0
	for _, fd := range fds {
		if l, _ := os.Readlink("/proc/self/fd/" + fd.Name()); strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

func TestHandshakeFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("5,000 handshakes")
	}
	addr := target(t, echo)
	b := startBridge(t, static(addr), nil, &bridge.Options{PerIPSessions: 4, PerIPRate: 200, PerIPBurst: 50})
	host := strings.TrimPrefix(b.url, "ws://")
	base := openSockets(t)
	const total, workers = 5000, 64
	var statuses sync.Map
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%8))}
				d := net.Dialer{LocalAddr: src, Timeout: 5 * time.Second}
				c, err := d.Dial("tcp", host)
				if err != nil {
					statuses.Store(i, -1)
					continue
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+host+"\r\n"+upgradeHeaders+"\r\n")
				var buf [12]byte
				_, err = io.ReadFull(c, buf[:])
				c.Close()
				code := -2
				if err == nil {
					code = int(buf[9]-'0')*100 + int(buf[10]-'0')*10 + int(buf[11]-'0')
				}
				statuses.Store(i, code)
			}
		})
	}
	wg.Wait()
	counts := map[int]int{}
	statuses.Range(func(_, v any) bool {
		counts[v.(int)]++
		return true
	})
	t.Logf("5,000 handshakes from 8 addresses: %v", counts)
	if counts[101] == 0 || counts[429] == 0 || counts[101]+counts[429] != total {
		t.Errorf("want only 101s and 429s, got %v", counts)
	}
	waitIdle(t, b)
	deadline := time.Now().Add(10 * time.Second)
	for openSockets(t) > base {
		if time.Now().After(deadline) {
			t.Fatalf("%d sockets open, %d before the flood", openSockets(t), base)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWaitingOnBandwidthIsNotAPongTimeout: a client whose messages wait on
// a slow limit is not heard from (pongs are read between messages), and
// must not be closed for it.
func TestWaitingOnBandwidthIsNotAPongTimeout(t *testing.T) {
	var got atomic.Int64
	sink := target(t, func(c net.Conn) { countReads(c, &got) })
	b := startBridge(t, static(sink), nil, &bridge.Options{
		SessionBandwidthIn: 100_000, PingInterval: 200 * time.Millisecond, PongTimeout: 300 * time.Millisecond,
	})
	c := dial(t, b.url)
	ctx := t.Context()
	go func() {
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
	}()
	const size = 300_000 // 3 s at 100 KB/s
	for range size / 10_000 {
		if err := c.Write(ctx, websocket.MessageBinary, make([]byte, 10_000)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return got.Load() == size })
	c.Close(websocket.StatusNormalClosure, "")
	waitIdle(t, b)
	if strings.Contains(b.log.logs(), "Pong timeout") {
		t.Errorf("a client waiting on bandwidth was closed for a late pong:\n%s", b.log.logs())
	}
}

// TestSetLimitsOnLiveSessions lifts the total bandwidth while a session
// streams: the session speeds up and loses no byte.
func TestSetLimitsOnLiveSessions(t *testing.T) {
	var unused atomic.Int64
	addr := target(t, func(c net.Conn) { streamTarget(c, &unused) })
	b := startBridge(t, static(addr), nil, &bridge.Options{TotalBandwidthOut: 100_000, Linger: 200 * time.Millisecond})
	c := dial(t, b.url)
	off := int64(0)
	read := func(until time.Time) {
		for time.Now().Before(until) {
			readPattern(t, c, &off)
		}
	}
	read(time.Now().Add(time.Second))
	slow := off
	b.srv.SetLimits(bridge.Limits{})
	read(time.Now().Add(time.Second))
	fast := off - slow
	t.Logf("1 s at 100 KB/s: %d bytes; 1 s after lifting the limit: %d bytes", slow, fast)
	// A second at 100 KB/s moves about 100 KB (plus a burst); unlimited
	// over loopback, megabytes.
	if slow > 300_000 || fast < 3*slow {
		t.Errorf("the limit did not hold (%d) or was not lifted (%d)", slow, fast)
	}
}

// TestSetLimitsCaps changes the session caps of a running server: sessions
// already in keep going, new handshakes meet the new caps.
func TestSetLimitsCaps(t *testing.T) {
	b := startBridge(t, static(target(t, echo)), nil, nil)
	c1, c2 := dial(t, b.url), dial(t, b.url)
	b.srv.SetLimits(bridge.Limits{MaxSessions: 2, PerIPSessions: -1, PerIPRate: -1})
	if st, _ := statusOf(t, b.url, "/"); st != 503 {
		t.Fatalf("third session under a new cap of 2: %d, want 503", st)
	}
	for _, c := range []*websocket.Conn{c1, c2} {
		c.Write(t.Context(), websocket.MessageBinary, []byte("still here"))
		if _, m, err := c.Read(t.Context()); err != nil || string(m) != "still here" {
			t.Fatalf("a live session broke on SetLimits: %q, %v", m, err)
		}
	}
	b.srv.SetLimits(bridge.Limits{PerIPSessions: 3, PerIPRate: -1})
	if st, _ := statusOf(t, b.url, "/"); st != 101 {
		t.Fatalf("after lifting the cap: %d", st)
	}
}
