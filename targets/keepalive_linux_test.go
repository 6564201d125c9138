package targets_test

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/internal/testenv"
	"github.com/wsbridge/wsbridge/targets"
)

// TestTargetSocketOptions reads back the socket options of dialled
// targets: keepalive probes after 30 to 60 s idle (spread per connection,
// so sessions opened together do not probe together), every 10 s, 3 of
// them, and TCP_NODELAY.
func TestTargetSocketOptions(t *testing.T) {
	addr := testenv.Listen(t, "tcp", "127.0.0.1:0", func(c net.Conn) { c.Read(make([]byte, 1)) })
	want := map[string]struct{ level, opt, value int }{
		"SO_KEEPALIVE":  {syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		"TCP_KEEPINTVL": {syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, 10},
		"TCP_KEEPCNT":   {syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, 3},
		"TCP_NODELAY":   {syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1},
	}
	idles := map[int]bool{}
	for range 20 {
		c, err := targets.Target{Network: "tcp", Address: addr}.Dial(t.Context(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		raw.Control(func(fd uintptr) {
			for name, w := range want {
				got, err := syscall.GetsockoptInt(int(fd), w.level, w.opt)
				if err != nil || got != w.value {
					t.Errorf("%s = %d, %v; want %d", name, got, err, w.value)
				}
			}
			idle, err := syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
			if err != nil || idle < 30 || idle >= 60 {
				t.Errorf("TCP_KEEPIDLE = %d, %v; want 30 to 59", idle, err)
			}
			idles[idle] = true
		})
		c.Close()
	}
	// 20 draws from 30 seconds: all the same has odds of 30^-19.
	if len(idles) < 2 {
		t.Errorf("every connection probes after the same idle time: %v", idles)
	}
}
