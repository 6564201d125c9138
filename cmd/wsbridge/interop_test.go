package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/internal/testenv"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// wsbridgeBinary builds the command once per test run.
func wsbridgeBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wsbridge-test")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "wsbridge")
		out, err := exec.Command("go", "build", "-o", buildPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// interopTarget accepts connections and echoes, except that a first message
// "CLOSE" makes it answer "bye" and close.
func interopTarget(t testing.TB, network, addr string) string {
	t.Helper()
	return testenv.Listen(t, network, addr, func(c net.Conn) {
		b := make([]byte, 5)
		n, err := io.ReadFull(c, b)
		if err == nil && string(b) == "CLOSE" {
			c.Write([]byte("bye"))
			return
		}
		c.Write(b[:n])
		io.Copy(c, c)
	})
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) string { return strconv.Itoa(testenv.FreePort(t)) }

// startProxy runs program with websockify arguments, which must make it
// listen on 127.0.0.1:port, and waits until it does. It is stopped with
// SIGTERM at cleanup.
func startProxy(t testing.TB, program, port string, args ...string) *bytes.Buffer {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(program, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(program), out.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
			return &out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %s within 15s:\n%s", program, port, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// interopCase is one client-side check. It returns a line that describes
// what the client saw; both implementations must see the same.
type interopCase struct {
	name string
	path string // request path and query
	run  func(ctx context.Context, url string) string
}

func dialResult(ctx context.Context, url string, protos []string) (*websocket.Conn, string) {
	// websockify refuses by closing the connection, wsbridge with an HTTP
	// status: the client sees a failed handshake either way.
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: protos})
	if err != nil {
		return nil, "refused"
	}
	c.SetReadLimit(-1)
	return c, ""
}

func echoCase(protos []string, msgs ...[]byte) func(ctx context.Context, url string) string {
	return func(ctx context.Context, url string) string {
		c, res := dialResult(ctx, url, protos)
		if c == nil {
			return res
		}
		defer c.CloseNow()
		var want []byte
		for _, m := range msgs {
			if err := c.Write(ctx, websocket.MessageBinary, m); err != nil {
				return "write: " + err.Error()
			}
			want = append(want, m...)
		}
		var got []byte
		for len(got) < len(want) {
			typ, m, err := c.Read(ctx)
			if err != nil {
				return fmt.Sprintf("read after %d bytes: %v", len(got), err)
			}
			if typ != websocket.MessageBinary {
				return "text message"
			}
			got = append(got, m...)
		}
		if !bytes.Equal(got, want) {
			return "echo differs"
		}
		if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
			return "close: " + err.Error()
		}
		return fmt.Sprintf("echoed %d bytes, subprotocol %q", len(got), c.Subprotocol())
	}
}

func interopCases() []interopCase {
	big := bytes.Repeat([]byte("0123456789"), 6000)
	return []interopCase{
		{"binary echo", "/", echoCase([]string{"binary"}, []byte("hello"), big, []byte("x"))},
		{"no subprotocol echo", "/websockify", echoCase(nil, []byte("hello"), big)},
		{"binary among others", "/", echoCase([]string{"binary", "base64"}, []byte("hello"))},
		{"empty message", "/", echoCase(nil, []byte("hello"), []byte{}, []byte("x"))},
		{"target closes", "/", func(ctx context.Context, url string) string {
			c, res := dialResult(ctx, url, []string{"binary"})
			if c == nil {
				return res
			}
			defer c.CloseNow()
			c.Write(ctx, websocket.MessageBinary, []byte("CLOSE"))
			var got []byte
			for {
				_, m, err := c.Read(ctx)
				if err != nil {
					var ce websocket.CloseError
					if errors.As(err, &ce) {
						return fmt.Sprintf("got %q then close %d %q", got, ce.Code, ce.Reason)
					}
					return fmt.Sprintf("got %q then %v", got, err)
				}
				got = append(got, m...)
			}
		}},
		{"client closes with its own code", "/", func(ctx context.Context, url string) string {
			c, res := dialResult(ctx, url, []string{"binary"})
			if c == nil {
				return res
			}
			defer c.CloseNow()
			if err := c.Close(4001, "bye"); err != nil {
				return "close: " + err.Error()
			}
			return "close handshake completed"
		}},
	}
}

func tokenCases() []interopCase {
	return []interopCase{
		{"token", "/websockify?token=desk1", echoCase([]string{"binary"}, []byte("hello"))},
		{"token after a tab", "/?token=desk2", echoCase(nil, []byte("hello"))},
		{"token in other file", "/x?a=1&token=desk3&b=2", echoCase([]string{"binary"}, []byte("hello"))},
		{"v6 token", "/websockify?token=desk6", echoCase([]string{"binary"}, []byte("hello"))},
		{"unknown token", "/websockify?token=nope", echoCase([]string{"binary"}, []byte("hello"))},
		{"no token", "/websockify", echoCase([]string{"binary"}, []byte("hello"))},
	}
}

func runCases(t *testing.T, base string, cases []interopCase) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, c := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		got[c.name] = c.run(ctx, base+c.path)
		cancel()
	}
	return got
}

func TestInteropWithWebsockify(t *testing.T) {
	websockify := testenv.Program(t, "websockify", "websockify")
	wsbridge := wsbridgeBinary(t)
	target := interopTarget(t, "tcp", "127.0.0.1:0")

	dir := t.TempDir()
	_, p, _ := net.SplitHostPort(target)
	os.WriteFile(filepath.Join(dir, "a"), []byte("# desktops\ndesk1: "+target+"\ndesk2:\t"+target+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "b"), []byte("desk3: 127.0.0.1:"+p+"\n"), 0o600)
	want := map[string]string{
		"binary echo":                     `echoed 60006 bytes, subprotocol "binary"`,
		"no subprotocol echo":             `echoed 60005 bytes, subprotocol ""`,
		"binary among others":             `echoed 5 bytes, subprotocol "binary"`,
		"empty message":                   `echoed 6 bytes, subprotocol ""`,
		"target closes":                   `got "bye" then close 1000 "Target closed"`,
		"client closes with its own code": "close handshake completed",
		"token":                           `echoed 5 bytes, subprotocol "binary"`,
		"token after a tab":               `echoed 5 bytes, subprotocol ""`,
		"token in other file":             `echoed 5 bytes, subprotocol "binary"`,
		"v6 token":                        `echoed 5 bytes, subprotocol "binary"`,
		"unknown token":                   "refused",
		"no token":                        "refused",
	}
	cases := tokenCases()
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		ln.Close()
		v6 := interopTarget(t, "tcp", "[::1]:0")
		_, p6, _ := net.SplitHostPort(v6)
		// websockify wants ::1:port; brackets would fail there.
		os.WriteFile(filepath.Join(dir, "c"), []byte("desk6: ::1:"+p6+"\n"), 0o600)
	} else {
		t.Logf("no IPv6 loopback (%v): skipping the v6 token", err)
		cases = cases[:3]
		cases = append(cases, tokenCases()[4:]...)
	}

	results := map[string]map[string]string{}
	for _, impl := range []struct{ name, program string }{{"websockify", websockify}, {"wsbridge", wsbridge}} {
		port := freePort(t)
		startProxy(t, impl.program, port, "127.0.0.1:"+port, target)
		res := runCases(t, "ws://127.0.0.1:"+port, interopCases())
		tport := freePort(t)
		startProxy(t, impl.program, tport, "--token-plugin", "TokenFile", "--token-source", dir, "127.0.0.1:"+tport)
		for k, v := range runCases(t, "ws://127.0.0.1:"+tport, cases) {
			res[k] = v
		}
		results[impl.name] = res
		t.Logf("%s: %q", impl.name, res)
	}
	for name, w := range want {
		ws, wb := results["websockify"][name], results["wsbridge"][name]
		if _, ok := results["wsbridge"][name]; !ok {
			continue
		}
		if ws != wb {
			t.Errorf("%s: websockify saw %q, wsbridge saw %q", name, ws, wb)
		}
		if wb != w {
			t.Errorf("%s: wsbridge saw %q, want %q", name, wb, w)
		}
	}
}
