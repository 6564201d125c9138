package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/internal/testenv"
	"github.com/wsbridge/wsbridge/targets"
)

// connectBridge runs a wsbridge daemon with targets for the connect tests:
// /echo, /hello (says hello and closes), /reset (resets at the first
// byte), /dead (nothing listens), /quiet (says ready, then only reads), and
// the token "tok" for /echo's target.
func connectBridge(t *testing.T, extra string) *process {
	t.Helper()
	echo := testenv.Listen(t, "tcp", "127.0.0.1:0", testenv.Echo)
	hello := testenv.Listen(t, "tcp", "127.0.0.1:0", func(c net.Conn) { c.Write([]byte("hello\n")) })
	reset := testenv.Listen(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		c.Read(make([]byte, 1))
		c.(*net.TCPConn).SetLinger(0)
	})
	quiet := testenv.Listen(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		c.Write([]byte("ready\n"))
		io.Copy(io.Discard, c)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	cfg := writeConfig(t, fmt.Sprintf(`listen = "127.0.0.1:0"
drain_timeout = "0s"
%s
target "echo" {
  address = %q
  path    = "/echo"
}
target "hello" {
  address = %q
  path    = "/hello"
}
target "reset" {
  address = %q
  path    = "/reset"
}
target "dead" {
  address = %q
  path    = "/dead"
}
target "quiet" {
  address = %q
  path    = "/quiet"
}
target "tok" {
  address = %q
  token   = "tok-secret"
}
`, extra, echo, hello, reset, dead, quiet, echo))
	return startDaemon(t, "run", "-config", cfg)
}

// connectRun is a `wsbridge connect` process with standard input from in.
type connectRun struct {
	cmd            *exec.Cmd
	stdout, stderr lockedLog
	done           chan int
}

func startConnect(t *testing.T, in io.Reader, args ...string) *connectRun {
	t.Helper()
	r := &connectRun{cmd: exec.Command(wsbridgeBinary(t), append([]string{"connect"}, args...)...), done: make(chan int, 1)}
	r.cmd.Stdin = in
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.cmd.Wait()
		r.done <- r.cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() { r.cmd.Process.Kill() })
	return r
}

func (r *connectRun) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-r.done:
		return code
	case <-time.After(20 * time.Second):
		t.Fatalf("wsbridge connect still running; stderr:\n%s", r.stderr.String())
		return -1
	}
}

// waitReady waits until the /quiet target's greeting came through.
func (r *connectRun) waitReady(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); r.stdout.String() != "ready\n"; {
		if time.Now().After(deadline) {
			t.Fatalf("no greeting through the session; stdout %q, stderr:\n%s", r.stdout.String(), r.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConnectExitCodes(t *testing.T) {
	d := connectBridge(t, "")
	base := "ws://" + d.addr
	for _, tt := range []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stdout string
		stderr string // a part of it
	}{
		{"target closes", []string{base + "/hello"}, "", 0, "hello\n", ""},
		{"base64", []string{"-subprotocol", "base64", base + "/hello"}, "", 0, "hello\n", ""},
		{"no subprotocol", []string{base + "/hello", "-subprotocol", "none"}, "", 0, "hello\n", ""},
		{"input ends, answer kept", []string{"-eof-wait", "300ms", base + "/echo"}, "ping\n", 0, "ping\n", ""},
		{"base64 input ends", []string{"-subprotocol", "base64", "-eof-wait", "300ms", base + "/echo"}, "ping\n", 0, "ping\n", ""},
		{"token", []string{"-token", "tok-secret", "-eof-wait", "300ms", base + "/"}, "tok\n", 0, "tok\n", ""},
		{"unknown token", []string{"-token", "wrong-secret", base + "/"}, "", 3, "", "404 Not Found: not found"},
		{"dead target", []string{base + "/dead"}, "", 3, "", "502 Bad Gateway: target unreachable"},
		{"no origin", []string{"-origin", "none", base + "/echo"}, "", 3, "", "403 Forbidden"},
		{"target reset", []string{"-eof-wait", "-1s", base + "/reset"}, "x", 5, "", "the bridge closed the session: 1011"},
		{"bridge unreachable", []string{"ws://" + deadAddrCmd(t) + "/?token=hidden"}, "", 1, "", "connection refused"},
		{"bad URL", []string{"http://" + d.addr}, "", 2, "", "not a ws:// or wss:// URL"},
		{"two auths", []string{"-user", "a", "-password-file", "x", "-bearer-file", "y", base}, "", 2, "", "one or the other"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := startConnect(t, strings.NewReader(tt.stdin), tt.args...)
			code := r.wait(t)
			if code != tt.code || r.stdout.String() != tt.stdout || !strings.Contains(r.stderr.String(), tt.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, and %q in stderr", code, r.stdout.String(), r.stderr.String(), tt.code, tt.stdout, tt.stderr)
			}
			for _, secret := range []string{"tok-secret", "wrong-secret", "hidden"} {
				if strings.Contains(r.stderr.String(), secret) {
					t.Errorf("stderr shows a token: %q", r.stderr.String())
				}
			}
		})
	}
	if strings.Contains(d.log(), "secret") {
		t.Errorf("the bridge logged a token:\n%s", d.log())
	}
}

// osPipe is a pipe for a child's standard input that stays open until the
// test closes it (exec waits for its own copying of anything else).
func osPipe(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func deadAddrCmd(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + freePort(t)
}

// TestConnectSignals: SIGINT (Ctrl-C) and SIGHUP (how ssh ends its
// ProxyCommand) close the session with 1001 and exit 130; a bridge that
// shuts down closes it with 1001 too, which is exit 4.
func TestConnectSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			d := connectBridge(t, "")
			in, inW := osPipe(t)
			defer inW.Close()
			r := startConnect(t, in, "ws://"+d.addr+"/quiet")
			r.waitReady(t)
			r.cmd.Process.Signal(sig)
			if code := r.wait(t); code != 130 {
				t.Errorf("exit %d after %v, want 130; stderr:\n%s", code, sig, r.stderr.String())
			}
			if !d.waitLog(t, "close_code=1001") {
				t.Errorf("the bridge did not see 1001:\n%s", d.log())
			}
		})
	}
	t.Run("bridge shutdown", func(t *testing.T) {
		d := connectBridge(t, "")
		in, inW := osPipe(t)
		defer inW.Close()
		r := startConnect(t, in, "ws://"+d.addr+"/quiet")
		r.waitReady(t)
		d.cmd.Process.Signal(syscall.SIGTERM)
		if code := r.wait(t); code != 4 || !strings.Contains(r.stderr.String(), "1001 Server shutting down") {
			t.Errorf("exit %d, stderr %q; want 4 and the 1001", code, r.stderr.String())
		}
	})
}

// TestConnectListen: -listen gives each local connection a WebSocket of
// its own; bytes arrive whole and in order, and SIGINT exits 0.
func TestConnectListen(t *testing.T) {
	d := connectBridge(t, "")
	p := startCmd(t, exec.Command(wsbridgeBinary(t), "connect", "-listen", "127.0.0.1:0", "ws://"+d.addr+"/echo"))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			data := bytes.Repeat([]byte{byte(i), byte(i * 7), 3}, 700<<10)
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(io.LimitReader(c, int64(len(data))))
				got <- b
			}()
			c.Write(data)
			if b := <-got; !bytes.Equal(b, data) {
				errs <- fmt.Errorf("connection %d: %d bytes back, want %d unchanged", i, len(b), len(data))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if !p.waitLog(t, "msg=\"session closed\"") {
		t.Errorf("no session line:\n%s", p.log())
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d after SIGINT, want 0:\n%s", code, p.log())
	}
}

// TestConnectSecretsFromFiles: -token-file, -user with -password-file and
// -bearer-file, through a bridge that requires them.
func TestConnectSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bearers := write("bearers", "ci token-of-ci-0123456789abcdef0123456789\n")
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := write("htpasswd", "alice:"+string(hash)+"\n")
	d := connectBridge(t, fmt.Sprintf("auth {\n  bearer_file = %q\n  htpasswd = %q\n  require = true\n}\n", bearers, users))
	pw := write("pw", "alice-pw\n")
	good := write("good", "token-of-ci-0123456789abcdef0123456789\n")
	bad := write("bad", "not-it-0123456789abcdef0123456789abcdef\n")
	tok := write("tok", "tok-secret\n")
	for _, tt := range []struct {
		name string
		args []string
		code int
	}{
		{"bearer", []string{"-bearer-file", good, "ws://" + d.addr + "/hello"}, 0},
		{"bearer and token file", []string{"-bearer-file", good, "-token-file", tok, "-eof-wait", "200ms", "ws://" + d.addr + "/"}, 0},
		{"basic", []string{"-user", "alice", "-password-file", pw, "ws://" + d.addr + "/hello"}, 0},
		{"wrong password", []string{"-user", "alice", "-password-file", bad, "ws://" + d.addr + "/hello"}, 3},
		{"wrong bearer", []string{"-bearer-file", bad, "ws://" + d.addr + "/hello"}, 3},
		{"none", []string{"ws://" + d.addr + "/hello"}, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := startConnect(t, strings.NewReader(""), tt.args...)
			if code := r.wait(t); code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, r.stderr.String())
			}
			if strings.Contains(r.stderr.String(), "token-of-ci") || strings.Contains(r.stderr.String(), "not-it") || strings.Contains(r.stderr.String(), "alice-pw") {
				t.Errorf("stderr shows a secret: %q", r.stderr.String())
			}
		})
	}
}

// TestConnectInProcess runs connect's command in this process against an
// in-process bridge, and checks the exit status each ending maps to.
func TestConnectInProcess(t *testing.T) {
	hello := testenv.Listen(t, "tcp", "127.0.0.1:0", func(c net.Conn) { c.Write([]byte("hi")) })
	reset := testenv.Listen(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		c.Read(make([]byte, 1))
		c.(*net.TCPConn).SetLinger(0)
	})
	quiet := testenv.Listen(t, "tcp", "127.0.0.1:0", func(c net.Conn) { io.Copy(io.Discard, c) })
	r, err := targets.NewRouter([]targets.Route{
		{Path: "/hello", Target: targets.Target{Name: "hello", Network: "tcp", Address: hello}},
		{Path: "/reset", Target: targets.Target{Name: "reset", Network: "tcp", Address: reset}},
		{Path: "/quiet", Target: targets.Target{Name: "quiet", Network: "tcp", Address: quiet}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := bridge.New(r, &bridge.Options{Logger: slog.New(slog.DiscardHandler)})
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
	base := "ws://" + ln.Addr().String()
	for _, tt := range []struct {
		name   string
		args   []string
		stdin  string
		cancel time.Duration // cancel the context after this long; 0 never
		code   int
		stdout string
	}{
		{"binary", []string{base + "/hello"}, "", 0, 0, "hi"},
		{"base64", []string{"-subprotocol", "base64", base + "/hello"}, "", 0, 0, "hi"},
		{"refused", []string{base + "/nope"}, "", 0, 3, ""},
		{"target reset", []string{"-eof-wait", "-1s", base + "/reset"}, "x", 0, 5, ""},
		{"unreachable", []string{"ws://" + deadAddrCmd(t) + "/"}, "", 0, 1, ""},
		{"interrupted", []string{"-eof-wait", "-1s", base + "/quiet"}, "", 200 * time.Millisecond, 130, ""},
		{"usage", []string{"-subprotocol", "text", base + "/hello"}, "", 0, 2, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.cancel > 0 {
				time.AfterFunc(tt.cancel, cancel)
			}
			var stdout, stderr strings.Builder
			err := cmdConnect(ctx, tt.args, strings.NewReader(tt.stdin), &stdout, &stderr)
			if code := exitCode(err, &stderr); code != tt.code || stdout.String() != tt.stdout {
				t.Errorf("exit %d, stdout %q (err %v, stderr %q); want %d, %q", code, stdout.String(), err, stderr.String(), tt.code, tt.stdout)
			}
		})
	}
}
