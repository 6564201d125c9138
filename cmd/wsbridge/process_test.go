package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// process is a wsbridge process started by a test.
type process struct {
	cmd  *exec.Cmd
	addr string // where it listens
	mu   sync.Mutex
	logs strings.Builder
	done chan error
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startDaemon runs the built binary and waits for its "listening" line.
func startDaemon(t *testing.T, args ...string) *process {
	t.Helper()
	return startCmd(t, exec.Command(wsbridgeBinary(t), args...))
}

// startCmd is startDaemon for a command the test has prepared.
func startCmd(t *testing.T, cmd *exec.Cmd) *process {
	t.Helper()
	d := &process{cmd: cmd, done: make(chan error, 1)}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.mu.Lock()
			d.logs.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		d.done <- d.cmd.Wait()
	}()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("wsbridge log:\n%s", d.log())
		}
	})
	select {
	case d.addr = <-addr:
	case err := <-d.done:
		t.Fatalf("wsbridge exited before listening: %v\n%s", err, d.log())
	case <-time.After(15 * time.Second):
		t.Fatalf("wsbridge did not listen within 15s:\n%s", d.log())
	}
	return d
}

func (d *process) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

// waitLog waits until the log holds substr: the log is read from a pipe,
// so a line the process wrote a moment ago may not be in yet.
func (d *process) waitLog(t *testing.T, substr string) bool {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(d.log(), substr) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// wait returns the process's exit code, failing if it does not exit in time.
func (d *process) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case err := <-d.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(within):
		t.Fatalf("wsbridge still running after %v:\n%s", within, d.log())
		return -1
	}
}

func writeConfig(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bridge.hcl")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSIGTERMDrainsThenCloses(t *testing.T) {
	target := interopTarget(t, "tcp", "127.0.0.1:0")
	cfg := writeConfig(t, `listen = "127.0.0.1:0"
drain_timeout = "300ms"
http {
  allow_no_origin = true
}
target "echo" {
  address = "`+target+`"
}
`)
	d := startDaemon(t, "run", "-config", cfg)
	if !strings.Contains(d.log(), "msg=bridging target=echo address="+target+" path=*") {
		t.Errorf("no line saying where it bridges to:\n%s", d.log())
	}
	ctx := t.Context()
	c, _, err := websocket.Dial(ctx, "ws://"+d.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.Write(ctx, websocket.MessageBinary, []byte("hello"))
	if _, m, err := c.Read(ctx); err != nil || string(m) != "hello" {
		t.Fatalf("echo = %q, %v", m, err)
	}
	start := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	_, _, err = c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway || ce.Reason != "Server shutting down" {
		t.Fatalf("after SIGTERM the client got %v, want close 1001", err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Errorf("closed after %v, before the 300ms drain", waited)
	}
	if code := d.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	if !strings.Contains(d.log(), "close_code=1001") {
		t.Errorf("no session line with close_code=1001:\n%s", d.log())
	}
}

func TestWebsockifyRunOnce(t *testing.T) {
	target := interopTarget(t, "tcp", "127.0.0.1:0")
	d := startDaemon(t, "--run-once", "127.0.0.1:"+freePort(t), target)
	c, _, err := websocket.Dial(t.Context(), "ws://"+d.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close(websocket.StatusNormalClosure, "")
	if code := d.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}

func TestWebsockifyIdleTimeoutExits(t *testing.T) {
	target := interopTarget(t, "tcp", "127.0.0.1:0")
	d := startDaemon(t, "--idle-timeout", "0.3", "127.0.0.1:"+freePort(t), target)
	if code := d.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	if !strings.Contains(d.log(), "--idle-timeout") {
		t.Errorf("the log does not say why it stopped:\n%s", d.log())
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	bad := writeConfig(t, "session {\n  dial_timeout = 10\n}\n")
	for _, args := range [][]string{
		{"--ssl-only", "6080", "h:1"},
		{"run", "-config", bad},
		{"run", "-nope"},
	} {
		cmd := exec.Command(wsbridgeBinary(t), args...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%q: %v, want exit status 2\n%s", args, err, out)
		}
		if len(out) == 0 {
			t.Errorf("%q said nothing", args)
		}
	}
}

func TestUnreadableTokenFileStopsStart(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-tokens")
	cfg := writeConfig(t, "listen = \"127.0.0.1:0\"\ntoken_file \"t\" {\n  path = \""+missing+"\"\n}\n")
	out, err := exec.Command(wsbridgeBinary(t), "run", "-config", cfg).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("%v, want exit status 1\n%s", err, out)
	}
	if !strings.Contains(string(out), `token_file "t"`) || !strings.Contains(string(out), missing) {
		t.Errorf("the error does not name the token file and its path:\n%s", out)
	}
}

func TestBadTokenLinesDoNotStopStart(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(tokens, []byte("good: 127.0.0.1:1\nbad line\n"), 0o600)
	cfg := writeConfig(t, "listen = \"127.0.0.1:0\"\ntoken_file \"t\" {\n  path = \""+tokens+"\"\n}\n")
	d := startDaemon(t, "run", "-config", cfg)
	if !strings.Contains(d.log(), tokens+":2:") {
		t.Errorf("the bad line is not logged with its position:\n%s", d.log())
	}
}
