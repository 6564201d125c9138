package testenv

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
)

// Serve runs handle for every connection ln accepts, each in its own
// goroutine, until the test ends; then it closes ln and every connection
// and waits for the handlers, which must return once their connection is
// closed. It returns ln's address.
func Serve(t testing.TB, ln net.Listener, handle func(c net.Conn)) string {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// Listen listens on network and addr and serves it with handle, as Serve.
func Listen(t testing.TB, network, addr string, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	return Serve(t, ln, handle)
}

// Echo sends back what it reads.
func Echo(c net.Conn) { io.Copy(c, c) }

// TCPPair is a connected pair of loopback TCP sockets, closed when the
// test ends.
func TCPPair(t testing.TB) (a, b *net.TCPConn) {
	t.Helper()
	return TCPPairFrom(t, &net.ListenConfig{})
}

// TCPPairFrom is TCPPair with b accepted by a listener of lc's, whose
// Control can set b's socket options before the handshake.
func TCPPairFrom(t testing.TB, lc *net.ListenConfig) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}
