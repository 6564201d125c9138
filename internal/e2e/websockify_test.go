//go:build e2e

package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/wsbridge/wsbridge/internal/testenv"
)

// echoTarget is a TCP echo server on a loopback port.
func echoTarget(t *testing.T) string {
	t.Helper()
	return testenv.Listen(t, "tcp", "127.0.0.1:0", testenv.Echo)
}

// echoThrough sends n random bytes through a local TCP address that ends
// at an echo server and checks they come back unchanged.
func echoThrough(t *testing.T, addr string, n int) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := make([]byte, n)
	rand.Read(data)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(c, int64(n)))
		got <- b
	}()
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Errorf("%d bytes back for %d, or changed", len(b), n)
	}
}

// TestWebsockifyInterop: wsbridge's client against Debian's websockify
// server, and a websockify-era base64 client (Python websockets) against
// wsbridge.
func TestWebsockifyInterop(t *testing.T) {
	t.Run("connect to websockify", func(t *testing.T) {
		websockify := need(t, "websockify", "websockify")
		echo := echoTarget(t)
		port := strconv.Itoa(freePort(t))
		w := start(t, "websockify", exec.Command(websockify, "127.0.0.1:"+port, echo))
		waitPort(t, "127.0.0.1:"+port, w.exited)
		url := "ws://127.0.0.1:" + port + "/"

		// Standard input and output: the answer to the input comes back
		// before the session closes.
		cmd := exec.Command(wsbridge, "connect", "-eof-wait", "1s", url)
		cmd.Stdin = strings.NewReader("hello websockify\n")
		if out := run(t, "connect", cmd); out != "hello websockify\n" {
			t.Errorf("connect printed %q", out)
		}
		// -listen: several local connections, each its own WebSocket.
		l := start(t, "connect-listen", exec.Command(wsbridge, "connect", "-listen", "127.0.0.1:0", "-subprotocol", "none", url))
		addr := l.out.waitFor(t, regexp.MustCompile(`msg=listening addr=(\S+)`), l.exited)[1]
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() { echoThrough(t, addr, 4<<20) })
		}
		wg.Wait()
		// websockify 0.10 speaks only binary: a base64 client is refused
		// with a clear message and exit status.
		cmd = exec.Command(wsbridge, "connect", "-subprotocol", "base64", url)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 3 || !strings.Contains(stderr.String(), "400 Bad Request: Invalid protocol selected") {
			t.Errorf("base64 against websockify 0.10: %v, stderr %q; want a refusal", err, stderr.String())
		}
		t.Logf("base64 against websockify 0.10: exit %d: %s", ee.ExitCode(), strings.TrimSpace(stderr.String()))
	})
	t.Run("base64 client to wsbridge", func(t *testing.T) {
		python := needPython(t, "websockets", "python3-websockets")
		echo := echoTarget(t)
		bridge, addr := startBridge(t, fmt.Sprintf("target \"echo\" {\n  address = %q\n  path = \"/echo\"\n}\n", echo))
		out := run(t, "base64-client", exec.Command(python, "testdata/base64_client.py", "ws://"+addr+"/echo", "3000000"))
		if !strings.HasPrefix(out, "ok base64 3000000 ") {
			t.Errorf("the base64 client said %q", out)
		}
		if !strings.Contains(bridge.out.String(), "subprotocol=base64") {
			t.Errorf("the bridge did not log a base64 session:\n%s", bridge.out.String())
		}
	})
}
