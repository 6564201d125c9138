//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/internal/testenv"
)

// TestSocketActivation starts wsbridge the way systemd does: a listening
// socket on descriptor 3, LISTEN_FDS and LISTEN_PID (set by a shell that
// then execs wsbridge, so the PID is wsbridge's), and NOTIFY_SOCKET. It
// checks that wsbridge serves the inherited socket and tells systemd
// READY, RELOADING and STOPPING.
func TestSocketActivation(t *testing.T) {
	echo := testenv.Listen(t, "tcp", "127.0.0.1:0", testenv.Echo)
	ln, lf := inheritedListener(t)
	sock, got := datagrams(t, "notify")

	// The configured address is never bound: the passed socket replaces it.
	path := writeConfig(t, fmt.Sprintf(`listen = "127.0.0.1:1"
drain_timeout = "200ms"
http {
  allow_no_origin = true
}
target "echo" {
  address = %q
}
`, echo))
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, wsbridgeBinary(t), "run", "-config", path)
	cmd.ExtraFiles = []*os.File{lf}
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES=web", "NOTIFY_SOCKET="+sock)
	d := startCmd(t, cmd)
	if d.addr != "systemd:"+ln.Addr().String() {
		t.Errorf("listening on %s, want the passed socket %s", d.addr, ln.Addr())
	}
	wantNote := func(prefix string) {
		t.Helper()
		select {
		case n := <-got:
			if !strings.HasPrefix(n, prefix) {
				t.Fatalf("notification %q, want %s", n, prefix)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s notification", prefix)
		}
	}
	wantNote("READY=1")

	ws, _, err := websocket.Dial(t.Context(), "ws://"+ln.Addr().String(), nil)
	if err != nil {
		t.Fatalf("dial the inherited socket: %v", err)
	}
	ws.Write(t.Context(), websocket.MessageBinary, []byte("hi"))
	if _, p, err := ws.Read(t.Context()); err != nil || string(p) != "hi" {
		t.Fatalf("echo through the inherited socket: %q %v", p, err)
	}
	ws.Close(websocket.StatusNormalClosure, "")

	d.cmd.Process.Signal(syscall.SIGHUP)
	wantNote("RELOADING=1\nMONOTONIC_USEC=")
	wantNote("READY=1")
	d.cmd.Process.Signal(syscall.SIGTERM)
	wantNote("STOPPING=1")
	if code := d.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// inheritedListener is a listening socket and its file, to hand to a
// child process as systemd or inetd would.
func inheritedListener(t *testing.T) (net.Listener, *os.File) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return ln, f
}

// datagrams listens on a Unix datagram socket named name in a temporary
// directory, as systemd's NOTIFY_SOCKET or syslog's /dev/log, and passes
// on each datagram.
func datagrams(t *testing.T, name string) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	got := make(chan string, 100)
	go func() {
		buf := make([]byte, 8192)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
		}
	}()
	return path, got
}

// TestUnixListenerAndPortZero listens on a Unix socket with a mode and on
// port 0 at once, and reports the bound port.
func TestUnixListenerAndPortZero(t *testing.T) {
	echo := testenv.Listen(t, "tcp", "127.0.0.1:0", testenv.Echo)
	dir := t.TempDir()
	sockPath := filepath.Join(dir, "ws.sock")
	path := writeConfig(t, fmt.Sprintf(`http {
  allow_no_origin = true
}
listener "tcp" {
  address = "127.0.0.1:0"
}
listener "local" {
  address = "unix:%s"
  mode = "0660"
}
target "echo" {
  address = %q
}
`, sockPath, echo))
	d := startDaemon(t, "run", "-config", path)
	if !d.waitLog(t, "addr=unix:"+sockPath) {
		t.Fatalf("no listening line for the socket:\n%s", d.log())
	}
	if strings.HasSuffix(d.addr, ":0") {
		t.Errorf("listening line shows port 0, not the bound port: %s", d.addr)
	}
	fi, err := os.Stat(sockPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("socket mode %v, want 0660 socket", fi.Mode())
	}
	for _, url := range []string{"ws://" + d.addr} {
		ws, _, err := websocket.Dial(t.Context(), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		ws.Close(websocket.StatusNormalClosure, "")
	}
	c, err := net.Dial("unix", sockPath)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	buf := make([]byte, 12)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(buf); err != nil || string(buf) != "HTTP/1.1 101" {
		t.Errorf("upgrade over the Unix socket: %q %v", buf, err)
	}
	c.Close()
}
