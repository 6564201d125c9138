//go:build linux

package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/internal/testenv"
	"github.com/wsbridge/wsbridge/internal/testpki"
)

// badOrigin makes one refused handshake, which logs at warn.
func badOrigin(t *testing.T, addr string) {
	t.Helper()
	_, resp, err := websocket.Dial(t.Context(), "ws://"+addr, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("a foreign Origin: %v, want 403", err)
	}
}

// TestJournalPrefixes: with JOURNAL_STREAM naming its standard error,
// wsbridge writes "<N>" priorities and no time stamp; with a
// JOURNAL_STREAM naming another file, plain text lines with times.
func TestJournalPrefixes(t *testing.T) {
	echo := testenv.Listen(t, "tcp", "127.0.0.1:0", testenv.Echo)
	cfg := writeConfig(t, "listen = \"127.0.0.1:0\"\ndrain_timeout = \"100ms\"\ntarget \"vnc\" {\n  address = \""+echo+"\"\n}\n")
	for _, journal := range []bool{true, false} {
		t.Run(fmt.Sprint("journal=", journal), func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var st syscall.Stat_t
			if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			stream := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
			if !journal {
				stream = fmt.Sprintf("%d:%d", st.Dev, st.Ino+1)
			}
			cmd := exec.Command(wsbridgeBinary(t), "run", "-config", cfg)
			cmd.Stderr = f
			cmd.Env = append(os.Environ(), "JOURNAL_STREAM="+stream)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			addr := waitFile(t, f.Name(), regexp.MustCompile(`msg=listening addr=(\S+)`))
			badOrigin(t, addr)
			waitFile(t, f.Name(), regexp.MustCompile(`status=403`))
			cmd.Process.Signal(syscall.SIGTERM)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("exit: %v", err)
			}
			out, _ := os.ReadFile(f.Name())
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			prefix := regexp.MustCompile(`^<([3467])>level=[A-Z]+ msg=`)
			warned := false
			for _, l := range lines {
				m := prefix.FindStringSubmatch(l)
				switch {
				case journal && (m == nil || strings.Contains(l, "time=")):
					t.Errorf("journal line without a priority prefix, or with a time stamp: %q", l)
				case !journal && (m != nil || !strings.HasPrefix(l, "time=")):
					t.Errorf("plain line with a prefix, or without a time: %q", l)
				}
				if m != nil && m[1] == "4" && strings.Contains(l, "status=403") {
					warned = true
				}
				if m != nil && m[1] != "6" && strings.Contains(l, "msg=listening") {
					t.Errorf("the listening line is info, <6>: %q", l)
				}
			}
			if journal && !warned {
				t.Errorf("the refused handshake was not logged at <4>:\n%s", out)
			}
		})
	}
}

// waitFile polls a log file until re matches, and returns its first group.
func waitFile(t *testing.T, path string, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(path)
		if m := re.FindSubmatch(b); m != nil {
			if len(m) > 1 {
				return string(m[1])
			}
			return ""
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("%s never matched %s:\n%s", path, re, b)
	return ""
}

func nextMatch(t *testing.T, got <-chan string, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-got:
			if s := re.FindStringSubmatch(m); s != nil {
				return s
			}
		case <-timeout:
			t.Fatalf("no syslog message matching %s", re)
		}
	}
}

// TestSyslogOutput: log.syslog sends RFC 5424 messages, facility daemon,
// with the level as severity; websockify's --syslog --legacy-syslog sends
// RFC 3164 ones.
func TestSyslogOutput(t *testing.T) {
	echo := testenv.Listen(t, "tcp", "127.0.0.1:0", testenv.Echo)
	t.Run("rfc5424", func(t *testing.T) {
		sock, got := datagrams(t, "log")
		cfg := writeConfig(t, "listen = \"127.0.0.1:0\"\ndrain_timeout = \"100ms\"\nlog {\n  syslog = \""+sock+"\"\n}\ntarget \"vnc\" {\n  address = \""+echo+"\"\n}\n")
		cmd := exec.Command(wsbridgeBinary(t), "run", "-config", cfg)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		pid := strconv.Itoa(cmd.Process.Pid)
		m := nextMatch(t, got, regexp.MustCompile(`^<30>1 (\S+) \S+ wsbridge (\d+) - - level=INFO msg=listening addr=(\S+)`))
		if _, err := time.Parse(time.RFC3339Nano, m[1]); err != nil || m[2] != pid {
			t.Errorf("header: time %q (%v), pid %s want %s", m[1], err, m[2], pid)
		}
		badOrigin(t, m[3])
		nextMatch(t, got, regexp.MustCompile(`^<28>1 \S+ \S+ wsbridge `+pid+` - - level=WARN msg=.*status=403`))
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("exit: %v", err)
		}
	})
	t.Run("rfc3164", func(t *testing.T) {
		sock, got := datagrams(t, "log")
		cmd := exec.Command(wsbridgeBinary(t), "--syslog", sock, "--legacy-syslog", "127.0.0.1:0", echo)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		pid := strconv.Itoa(cmd.Process.Pid)
		nextMatch(t, got, regexp.MustCompile(`^<30>wsbridge\[`+pid+`\]: level=INFO msg=listening addr=\S+`))
		cmd.Process.Signal(syscall.SIGTERM)
		nextMatch(t, got, regexp.MustCompile(`^<30>wsbridge\[`+pid+`\]: level=INFO msg=stopped`))
		cmd.Wait()
	})
}

// TestWebsockifyInetd: --inetd serves the listening socket on standard
// input, as inetd-style supervisors pass it.
func TestWebsockifyInetd(t *testing.T) {
	target := interopTarget(t, "tcp", "127.0.0.1:0")
	ln, f := inheritedListener(t)
	cmd := exec.Command(wsbridgeBinary(t), "--inetd", target)
	cmd.Stdin = f
	d := startCmd(t, cmd)
	if d.addr != "inetd:"+ln.Addr().String() {
		t.Errorf("listening on %s, want the inherited %s", d.addr, ln.Addr())
	}
	c, _, err := websocket.Dial(t.Context(), "ws://"+ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.Write(t.Context(), websocket.MessageBinary, []byte("hello inetd"))
	var echoed []byte
	for len(echoed) < len("hello inetd") {
		_, m, err := c.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		echoed = append(echoed, m...)
	}
	if string(echoed) != "hello inetd" {
		t.Errorf("echo %q", echoed)
	}

	// Standard input that is not a listening socket is a clear error.
	out, err := exec.Command(wsbridgeBinary(t), "--inetd", target).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "standard input is not a listening socket") {
		t.Errorf("--inetd without a socket: %v\n%s", err, out)
	}
}

// TestForwardedForThroughConfig: http.trusted_proxies in bridge.hcl makes
// the session line name the forwarded client, and the proxy beside it;
// from an untrusted peer the header is ignored.
func TestForwardedForThroughConfig(t *testing.T) {
	echo := testenv.Listen(t, "tcp", "127.0.0.1:0", testenv.Echo)
	for _, c := range []struct {
		trusted, want string
	}{
		{`["127.0.0.1/32"]`, `remote=203\.0\.113\.9:0 path=/ proxy=127\.0\.0\.1:\d+ target=`},
		{`["10.0.0.0/8"]`, `remote=127\.0\.0\.1:\d+ path=/ target=`},
	} {
		cfg := writeConfig(t, "listen = \"127.0.0.1:0\"\nhttp {\n  allow_no_origin = true\n  trusted_proxies = "+c.trusted+"\n}\ntarget \"vnc\" {\n  address = \""+echo+"\"\n}\n")
		d := startDaemon(t, "run", "-config", cfg)
		ws, _, err := websocket.Dial(t.Context(), "ws://"+d.addr, &websocket.DialOptions{HTTPHeader: http.Header{"X-Forwarded-For": {"198.51.100.1, 203.0.113.9"}}})
		if err != nil {
			t.Fatal(err)
		}
		ws.Close(websocket.StatusNormalClosure, "")
		if !d.waitLog(t, "msg=session") {
			t.Fatalf("no session line:\n%s", d.log())
		}
		if !regexp.MustCompile(`msg=session ` + c.want).MatchString(d.log()) {
			t.Errorf("trusted_proxies %s: want %q in the session line:\n%s", c.trusted, c.want, d.log())
		}
	}
}

// TestRefusedReloadKeepsCertificates: a reload that fails after the new
// certificate files were read (here: its token file is gone) must leave
// the old certificate in use, like everything else.
func TestRefusedReloadKeepsCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "reload CA")
	first := ca.Server(t, "bridge", "127.0.0.1")
	cert, key := first.Write(t, dir, "bridge")
	tokens := filepath.Join(dir, "tokens")
	testpki.WriteFile(t, tokens, []byte("one: 127.0.0.1:5900\n"))
	cfg := writeConfig(t, fmt.Sprintf(`listen = "127.0.0.1:0"
tls {
  cert            = %q
  key             = %q
  reload_interval = "1h"
}
token_file "t" {
  path = %q
}
`, cert, key, tokens))
	d := startDaemon(t, "run", "-config", cfg)
	serial := func() string {
		c, err := tls.Dial("tcp", d.addr, &tls.Config{RootCAs: ca.Pool()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := serial(); got != first.Cert.SerialNumber.String() {
		t.Fatalf("serving %s, want %s", got, first.Cert.SerialNumber)
	}
	second := ca.Server(t, "bridge renewed", "127.0.0.1")
	second.Write(t, dir, "bridge")
	os.Remove(tokens)
	d.cmd.Process.Signal(syscall.SIGHUP)
	if !d.waitLog(t, "reload refused") {
		t.Fatalf("no refused reload:\n%s", d.log())
	}
	if got := serial(); got != first.Cert.SerialNumber.String() {
		t.Errorf("after a refused reload serving %s, want the old %s", got, first.Cert.SerialNumber)
	}
	// With the token file back, the same reload succeeds and the renewed
	// certificate is served.
	testpki.WriteFile(t, tokens, []byte("one: 127.0.0.1:5900\n"))
	d.cmd.Process.Signal(syscall.SIGHUP)
	if !d.waitLog(t, "msg=reloaded") {
		t.Fatalf("no reload:\n%s", d.log())
	}
	if got := serial(); got != second.Cert.SerialNumber.String() {
		t.Errorf("after the reload serving %s, want the renewed %s", got, second.Cert.SerialNumber)
	}
}
