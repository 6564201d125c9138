package loadtest

import (
	"io"
	"net"
	"sync"
)

// Relay is the plain TCP relay the bridges are measured against: for every
// connection it accepts it dials target and copies both ways with io.Copy,
// half-closing each side when the other ends. It is what a bridge costs
// without WebSocket framing. It serves until ln is closed.
func Relay(ln net.Listener, target string) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		wg.Go(func() {
			defer c.Close()
			t, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer t.Close()
			var one sync.WaitGroup
			one.Go(func() {
				io.Copy(t, c)
				t.(*net.TCPConn).CloseWrite()
			})
			io.Copy(c, t)
			c.(*net.TCPConn).CloseWrite()
			one.Wait()
		})
	}
}
