//go:build e2e

package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/wsbridge/wsbridge/internal/testpki"
)

// sshEnv is a real sshd on a loopback port and what a client needs to log
// in to it: a key pair, a known_hosts entry under the alias "e2e".
type sshEnv struct {
	dir, key, knownHosts, user, addr string
}

func startSSHD(t *testing.T) *sshEnv {
	t.Helper()
	sshd := need(t, "/usr/sbin/sshd", "openssh-server")
	keygen := need(t, "ssh-keygen", "openssh-client")
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e := &sshEnv{dir: dir, key: filepath.Join(dir, "id_ed25519"), knownHosts: filepath.Join(dir, "known_hosts"), user: u.Username}
	hostKey := filepath.Join(dir, "host_ed25519")
	run(t, "ssh-keygen", exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", hostKey))
	run(t, "ssh-keygen", exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", e.key))
	pub, _ := os.ReadFile(hostKey + ".pub")
	fields := strings.Fields(string(pub))
	os.WriteFile(e.knownHosts, []byte("e2e "+fields[0]+" "+fields[1]+"\n"), 0o600)
	userPub, _ := os.ReadFile(e.key + ".pub")
	os.WriteFile(filepath.Join(dir, "authorized_keys"), userPub, 0o600)
	if os.Geteuid() == 0 {
		// sshd's privilege separation directory, which systemd's tmpfiles
		// make on a booted system.
		os.MkdirAll("/run/sshd", 0o755)
	}
	port := freePort(t)
	e.addr = fmt.Sprintf("127.0.0.1:%d", port)
	conf := filepath.Join(dir, "sshd_config")
	os.WriteFile(conf, []byte(fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s/sshd.pid
AuthorizedKeysFile %s/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
Subsystem sftp internal-sftp
LogLevel VERBOSE
`, port, hostKey, dir, dir)), 0o600)
	d := start(t, "sshd", exec.Command(sshd, "-D", "-e", "-f", conf))
	waitPort(t, e.addr, d.exited)
	return e
}

// sshArgs are the client options that log in as the test's user with the
// test's key and trust only the test's host key.
func (e *sshEnv) sshArgs(extra ...string) []string {
	return append([]string{"-F", "none", "-i", e.key, "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + e.knownHosts, "-o", "HostKeyAlias=e2e",
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"}, extra...)
}

// randomFile writes n random bytes to a file and returns its path and
// SHA-256.
func randomFile(t *testing.T, n int64) (string, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rand.Reader, n)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p, hex.EncodeToString(h.Sum(nil))
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

// TestSSH runs OpenSSH through wsbridge: `wsbridge connect` as the
// ProxyCommand (binary, base64, and wss with a test CA) runs commands and
// moves 100 MB each way; scp goes through `wsbridge connect -listen`.
func TestSSH(t *testing.T) {
	ssh := need(t, "ssh", "openssh-client")
	scp := need(t, "scp", "openssh-client")
	e := startSSHD(t)

	dir := t.TempDir()
	ca := testpki.NewCA(t, "wsbridge e2e CA")
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, ca.PEM, 0o644)
	cert, key := ca.Server(t, "127.0.0.1", "127.0.0.1").Write(t, dir, "bridge")
	target := fmt.Sprintf("target \"ssh\" {\n  address = %q\n  path = \"/ssh\"\n}\n", e.addr)
	bridge, plain := startBridge(t, target)
	_, secure := startBridge(t, fmt.Sprintf("tls {\n  cert = %q\n  key = %q\n}\n", cert, key)+target)

	proxy := func(args string) string { return "ProxyCommand=" + wsbridge + " connect " + args }
	sshCmd := func(proxyArgs string, command ...string) *exec.Cmd {
		args := e.sshArgs("-o", proxy(proxyArgs), e.user+"@e2e")
		return exec.Command(ssh, append(args, command...)...)
	}

	t.Run("command", func(t *testing.T) {
		for _, tc := range []struct{ name, proxy string }{
			{"binary", "ws://" + plain + "/ssh"},
			{"base64", "-subprotocol base64 ws://" + plain + "/ssh"},
			{"wss", "-ca " + caFile + " wss://" + secure + "/ssh"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				out := run(t, "ssh", sshCmd(tc.proxy, "echo", "through", "wsbridge"))
				if out != "through wsbridge\n" {
					t.Errorf("ssh printed %q", out)
				}
			})
		}
	})

	const size = 100 << 20
	data, sum := randomFile(t, size)
	t.Run("100MB down", func(t *testing.T) {
		cmd := sshCmd("ws://"+plain+"/ssh", "cat", data)
		h := sha256.New()
		cmd.Stdout = h
		run(t, "ssh", cmd)
		if got := hex.EncodeToString(h.Sum(nil)); got != sum {
			t.Errorf("SHA-256 of what came down %s, want %s", got, sum)
		}
	})
	t.Run("100MB up", func(t *testing.T) {
		f, err := os.Open(data)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd := sshCmd("ws://"+plain+"/ssh", "sha256sum")
		cmd.Stdin = f
		out := run(t, "ssh", cmd)
		if got := strings.Fields(out); len(got) == 0 || got[0] != sum {
			t.Errorf("the server's sha256sum says %q, want %s", out, sum)
		}
	})
	t.Run("scp through -listen", func(t *testing.T) {
		l := start(t, "connect-listen", exec.Command(wsbridge, "connect", "-listen", "127.0.0.1:0", "ws://"+plain+"/ssh"))
		port := l.out.waitFor(t, regexp.MustCompile(`msg=listening addr=127\.0\.0\.1:(\d+)`), l.exited)[1]
		copyTo := filepath.Join(e.dir, "copy")
		run(t, "scp", exec.Command(scp, append(e.sshArgs("-P", port), data, e.user+"@127.0.0.1:"+copyTo)...))
		if got := sha256File(t, copyTo); got != sum {
			t.Errorf("SHA-256 of the copy %s, want %s", got, sum)
		}
		back := filepath.Join(t.TempDir(), "back")
		run(t, "scp", exec.Command(scp, append(e.sshArgs("-P", port), e.user+"@127.0.0.1:"+copyTo, back)...))
		if got := sha256File(t, back); got != sum {
			t.Errorf("SHA-256 of the copy back %s, want %s", got, sum)
		}
	})
	if logs := bridge.out.String(); !strings.Contains(logs, "target=\"ssh=") {
		t.Errorf("the bridge logged no ssh session:\n%s", logs)
	}
}
