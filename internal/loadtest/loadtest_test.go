package loadtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/internal/testenv"
	"github.com/wsbridge/wsbridge/internal/wsframe"
	"github.com/wsbridge/wsbridge/targets"
)

// startTarget runs the tool's target until the test ends and fails the
// test if the target saw a bad session that the test did not expect.
func startTarget(t *testing.T) *Target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := NewTarget(ln)
	t.Cleanup(tg.Close)
	return tg
}

// startBridge is a real wsbridge server, in this process, bridging to addr.
func startBridge(t *testing.T, addr string) string {
	t.Helper()
	return startBridgeOpts(t, addr, &bridge.Options{})
}

func startBridgeOpts(t *testing.T, addr string, opts *bridge.Options) string {
	t.Helper()
	r, err := targets.NewRouter([]targets.Route{{Target: targets.Target{Name: "t", Network: "tcp", Address: addr}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := *opts
	o.Logger, o.PerIPSessions, o.PerIPRate = slog.New(slog.DiscardHandler), -1, -1
	srv := bridge.New(r, &o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln.Addr().String()
}

// fault is a TCP proxy in front of a bridge that misbehaves after `after`
// bytes in the chosen direction: it flips a byte, stops forwarding, or
// drops both connections. Before that it forwards faithfully.
type fault int

const (
	faultNone fault = iota
	faultFlip
	faultStall
	faultDrop
)

func faultyProxy(t *testing.T, to string, kind fault, upstream bool, after int64) string {
	t.Helper()
	var stalled sync.WaitGroup
	stalled.Add(1)
	addr := testenv.Listen(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		up, err := net.Dial("tcp", to)
		if err != nil {
			return
		}
		defer up.Close()
		var wg sync.WaitGroup
		pipe := func(dst, src net.Conn, faulty bool) {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			var n int64
			for {
				k, err := src.Read(buf)
				if k > 0 && faulty && kind != faultNone && n+int64(k) > after {
					switch kind {
					case faultFlip:
						buf[after-n] ^= 0x20
						kind = faultNone // once
					case faultStall:
						stalled.Wait() // until the test ends
						c.Close()
						up.Close()
						return
					case faultDrop:
						c.(*net.TCPConn).SetLinger(0)
						c.Close()
						up.Close()
						return
					}
				}
				n += int64(k)
				if k > 0 {
					if _, err := dst.Write(buf[:k]); err != nil {
						return
					}
				}
				if err != nil {
					dst.(*net.TCPConn).CloseWrite()
					return
				}
			}
		}
		wg.Add(2)
		go pipe(up, c, upstream)
		go pipe(c, up, !upstream)
		wg.Wait()
	})
	// Cleanups run last first: release stalled handlers before Listen's
	// cleanup waits for them.
	t.Cleanup(stalled.Done)
	return addr
}

func TestThroughputThroughBridge(t *testing.T) {
	tg := startTarget(t)
	url := "ws://" + startBridge(t, tg.Addr()) + "/"
	self := &Process{PID: os.Getpid()}
	for _, b64 := range []bool{false, true} {
		for _, dir := range []Direction{ClientToTarget, TargetToClient} {
			e := &Endpoint{Name: "wsbridge", URL: url, Base64: b64}
			tp, err := MeasureThroughput(t.Context(), e, dir, 20<<20+13, self)
			if err != nil {
				t.Fatalf("%v base64=%v: %v", dir, b64, err)
			}
			if tp.Bytes != 20<<20+13 || tp.Elapsed <= 0 || tp.CPU <= 0 {
				t.Errorf("%v base64=%v: %+v, want the bytes, a time and CPU time", dir, b64, tp)
			}
		}
	}
	if errs := tg.Errors(); len(errs) > 0 {
		t.Errorf("the target saw %v", errs)
	}
}

func TestOtherMeasuresThroughBridgeAndRelay(t *testing.T) {
	tg := startTarget(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { Relay(ln, tg.Addr()); close(done) }()
	t.Cleanup(func() { ln.Close(); <-done })
	for _, e := range []*Endpoint{
		{Name: "wsbridge", URL: "ws://" + startBridge(t, tg.Addr()) + "/"},
		{Name: "relay", Addr: ln.Addr().String()},
		{Name: "direct", Addr: tg.Addr()},
	} {
		t.Run(e.Name, func(t *testing.T) {
			l, err := MeasureLatency(t.Context(), e, 300, 64)
			if err != nil || l.Count != 300 || l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 {
				t.Errorf("latency: %+v, %v", l, err)
			}
			s, err := MeasureSetup(t.Context(), e, 4, 300*time.Millisecond)
			if err != nil || s.Sessions == 0 {
				t.Errorf("setup: %+v, %v", s, err)
			}
			m, err := MeasureIdleMemory(t.Context(), e, 50, 10*time.Millisecond, &Process{PID: os.Getpid()}, 8)
			if err != nil || m.Sessions != 50 || m.Before <= 0 || m.End <= 0 {
				t.Errorf("memory: %+v, %v", m, err)
			}
		})
	}
}

// TestIdleSessionsAnswerPings: held sessions read as browsers do, so a
// bridge that ends sessions whose pongs are late keeps them all.
func TestIdleSessionsAnswerPings(t *testing.T) {
	tg := startTarget(t)
	url := "ws://" + startBridgeOpts(t, tg.Addr(), &bridge.Options{PingInterval: 50 * time.Millisecond, PongTimeout: 100 * time.Millisecond}) + "/"
	m, err := MeasureIdleMemory(t.Context(), &Endpoint{URL: url}, 30, time.Second, &Process{PID: os.Getpid()}, 8)
	if err != nil {
		t.Fatalf("MeasureIdleMemory through 20 ping rounds: %v", err)
	}
	if m.Sessions != 30 {
		t.Errorf("sessions %d, want 30", m.Sessions)
	}
}

// TestFaultsAreSeen: a byte flipped on the way (either way), a session that
// stops moving, and a dropped connection each fail the run with their own
// error; they are not counted as results.
func TestFaultsAreSeen(t *testing.T) {
	old := Stall
	Stall = 500 * time.Millisecond
	t.Cleanup(func() { Stall = old })
	tg := startTarget(t)
	bridgeAddr := startBridge(t, tg.Addr())
	for _, tt := range []struct {
		name     string
		kind     fault
		upstream bool
		dir      Direction
		want     error
	}{
		{"flip to target", faultFlip, true, ClientToTarget, ErrCorrupt},
		{"flip to client", faultFlip, false, TargetToClient, ErrCorrupt},
		{"stall to target", faultStall, true, ClientToTarget, ErrStalled},
		{"stall to client", faultStall, false, TargetToClient, ErrStalled},
		{"drop sending", faultDrop, true, ClientToTarget, ErrDropped},
		{"drop receiving", faultDrop, false, TargetToClient, ErrDropped},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Well past the handshake, inside a message's payload.
			proxy := faultyProxy(t, bridgeAddr, tt.kind, tt.upstream, 200_003)
			e := &Endpoint{URL: "ws://" + proxy + "/"}
			_, err := MeasureThroughput(t.Context(), e, tt.dir, 4<<20, nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("MeasureThroughput = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("drop idle sessions", func(t *testing.T) {
		var n atomic.Int64
		proxy := testenv.Listen(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
			up, err := net.Dial("tcp", bridgeAddr)
			if err != nil {
				return
			}
			defer up.Close()
			go io.Copy(up, c)
			// Every fifth session is cut while it is held.
			if n.Add(1)%5 == 0 {
				time.AfterFunc(200*time.Millisecond, func() { c.Close(); up.Close() })
			}
			io.Copy(c, up)
		})
		e := &Endpoint{URL: "ws://" + proxy + "/"}
		_, err := MeasureIdleMemory(t.Context(), e, 20, 500*time.Millisecond, &Process{PID: os.Getpid()}, 4)
		if !errors.Is(err, ErrDropped) {
			t.Fatalf("MeasureIdleMemory = %v, want ErrDropped", err)
		}
	})
	// The target saw the flipped byte; that was the point.
	found := false
	for _, err := range tg.Errors() {
		found = found || err != nil
	}
	if !found {
		t.Error("the target did not report the flipped byte it received")
	}
}

// TestSetupClient drives the setup run's hand-written WebSocket client
// against a real wsbridge, binary and base64, and against servers that
// refuse the handshake or answer it with the wrong accept key: those must
// be errors, not sessions counted.
func TestSetupClient(t *testing.T) {
	tg := startTarget(t)
	url := "ws://" + startBridge(t, tg.Addr()) + "/"
	for _, b64 := range []bool{false, true} {
		s, err := MeasureSetup(t.Context(), &Endpoint{Name: "wsbridge", URL: url, Base64: b64}, 4, 200*time.Millisecond)
		if err != nil || s.Sessions == 0 {
			t.Errorf("base64=%v: %+v, %v", b64, s, err)
		}
	}
	if errs := tg.Errors(); len(errs) > 0 {
		t.Errorf("the target saw %v", errs)
	}

	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	wrongKey := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: binary\r\n\r\n")
		brw.Flush()
		io.Copy(io.Discard, c)
	}))
	t.Cleanup(wrongKey.Close)
	for name, srv := range map[string]*httptest.Server{"404": notFound, "wrong accept key": wrongKey} {
		e := &Endpoint{URL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/"}
		if s, err := MeasureSetup(t.Context(), e, 1, 50*time.Millisecond); !errors.Is(err, errHandshake) {
			t.Errorf("%s: %+v, %v; want a refused handshake", name, s, err)
		}
	}
}

// TestPatternMasked: every window of the masked pattern, unmasked with the
// key given for it, is the pattern's window, at every key rotation and
// across the end of the period.
func TestPatternMasked(t *testing.T) {
	p := patternFor(42)
	for _, off := range []int64{0, 1, 2, 3, 65536, patternLen - 5, patternLen + 6, 3*patternLen + 2} {
		for _, n := range []int{0, 1, 7, MessageSize} {
			m, key := p.atMasked(off, n)
			got := bytes.Clone(m)
			wsframe.Mask(got, key)
			if want := p.at(off, n); !bytes.Equal(got, want) {
				t.Fatalf("offset %d, %d bytes: unmasked window differs from the pattern", off, n)
			}
		}
	}
}
