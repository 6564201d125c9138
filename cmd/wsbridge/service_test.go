package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// noServiceFiles checks that no install wrote its unit or SysV script.
// Only regular files count: while the packaging test purges its .deb,
// deb-systemd-helper briefly masks the unit with a symlink there.
func noServiceFiles(t *testing.T) {
	t.Helper()
	for _, f := range []string{"/etc/systemd/system/wsbridge.service", "/etc/init.d/wsbridge"} {
		if fi, err := os.Lstat(f); err == nil && fi.Mode().IsRegular() {
			t.Errorf("%s exists after a refused install", f)
		}
	}
}

const vncTarget = "target \"vnc\" {\n  address = \"127.0.0.1:5900\"\n}\n"

// exitStatus runs the binary and returns its exit status and output.
func exitStatus(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(wsbridgeBinary(t), args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("%q: %v", args, err)
	return 0, ""
}

func TestServiceInstallChecksConfigFirst(t *testing.T) {
	bad := writeConfig(t, "listen = \"127.0.0.1:6080\"\nsession {\n  dial_timeout = 10\n}\n")
	code, out := exitStatus(t, "service", "install", "-config", bad)
	if code != 2 || !strings.Contains(out, bad+":3:") || !strings.Contains(out, "does not pass wsbridge check; nothing installed") {
		t.Errorf("install of a broken config: exit %d, want 2 with a file:line diagnostic and \"nothing installed\":\n%s", code, out)
	}
	// A file that parses but names a missing token file fails check too.
	missing := writeConfig(t, "token_file \"t\" {\n  path = \"no-such-tokens\"\n}\n")
	if code, out := exitStatus(t, "service", "install", "-config", missing); code != 2 || !strings.Contains(out, "no-such-tokens") {
		t.Errorf("install with a missing token file: exit %d, want 2 naming the file:\n%s", code, out)
	}
	if code, out := exitStatus(t, "service", "install", "-config", filepath.Join(t.TempDir(), "none.hcl")); code != 1 || !strings.Contains(out, "copy bridge.hcl there") {
		t.Errorf("install without a config file: exit %d:\n%s", code, out)
	}
	noServiceFiles(t)
}

// TestServiceInstallRefusedWithoutInit: in a container (this machine and
// CI), install must say why and write nothing.
func TestServiceInstallRefusedWithoutInit(t *testing.T) {
	comm, err := os.ReadFile("/proc/1/comm")
	if err != nil {
		t.Skip("not Linux")
	}
	pid1 := strings.TrimSpace(string(comm))
	if _, err := os.Stat("/run/systemd/system"); err == nil || pid1 == "systemd" || pid1 == "init" {
		t.Skipf("PID 1 is %s: an init system runs here", pid1)
	}
	cfg := writeConfig(t, "listen = \"127.0.0.1:6080\"\n"+vncTarget)
	code, out := exitStatus(t, "service", "install", "-config", cfg)
	if code != 1 || !strings.Contains(out, "no init system") || !strings.Contains(out, "wsbridge run -config") {
		t.Errorf("install without an init system: exit %d, want 1 saying why and what to do:\n%s", code, out)
	}
	noServiceFiles(t)
	for _, c := range []string{"start", "stop", "status", "uninstall"} {
		if code, out := exitStatus(t, "service", c); code != 1 || !strings.Contains(out, "no init system") {
			t.Errorf("service %s: exit %d:\n%s", c, code, out)
		}
	}
}

func TestServicePrint(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bridge.hcl")
	src := `listen = "0.0.0.0:443"
drain_timeout = "40s"
pid_file = "run/wsbridge.pid"
recording {
  dir = "` + filepath.Join(dir, "recordings") + `"
}
` + vncTarget
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	code, unit := exitStatus(t, "service", "print", "-os", "linux", "-config", cfg, "-executable", "/usr/bin/wsbridge")
	if code != 0 {
		t.Fatalf("print: exit %d\n%s", code, unit)
	}
	for _, line := range []string{
		"AmbientCapabilities=CAP_NET_BIND_SERVICE",
		"ReadWritePaths=" + filepath.Join(dir, "recordings") + " " + filepath.Join(dir, "run"),
		"TimeoutStopSec=55",
		`ExecStart=/usr/bin/wsbridge "service" "run" "-config" "` + cfg + `"`,
		"WorkingDirectory=" + dir,
		"User=wsbridge",
	} {
		if !strings.Contains(unit, "\n"+line+"\n") {
			t.Errorf("unit lacks %q:\n%s", line, unit)
		}
	}
	code, w := exitStatus(t, "service", "print", "-os", "windows", "-config", cfg, "-executable", `C:\Program Files\wsbridge\wsbridge.exe`, "-installed-config", `C:\ProgramData\wsbridge\bridge.hcl`)
	if code != 0 || !strings.Contains(w, `"C:\Program Files\wsbridge\wsbridge.exe" service run -config C:\ProgramData\wsbridge\bridge.hcl`) || !strings.Contains(w, `NT AUTHORITY\LocalService`) {
		t.Errorf("print -os windows: exit %d:\n%s", code, w)
	}
	code, plist := exitStatus(t, "service", "print", "-os", "darwin", "-user-level", "-config", cfg)
	if code != 0 || !strings.Contains(plist, "<key>KeepAlive</key>") || strings.Contains(plist, "<key>UserName</key>") {
		t.Errorf("print -os darwin -user-level: exit %d:\n%s", code, plist)
	}
	if code, out := exitStatus(t, "service", "print", "-os", "plan9", "-config", cfg); code != 2 {
		t.Errorf("print -os plan9: exit %d, want 2:\n%s", code, out)
	}
}

// TestServiceRun runs what the service manager runs: relative paths are
// read from the config file's directory, SIGTERM drains and exits 0, and
// a daemon that cannot start exits non-zero so the manager restarts it.
func TestServiceRun(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "www"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "www", "index.html"), []byte("kiosk"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "bridge.hcl")
	if err := os.WriteFile(cfg, []byte("listen = \"127.0.0.1:0\"\nweb = \"www\"\npid_file = \"wsbridge.pid\"\ntarget \"vnc\" {\n  address = \"127.0.0.1:5900\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(wsbridgeBinary(t), "service", "run", "-config", "bridge.hcl")
	cmd.Dir = dir
	d := startCmd(t, cmd)
	resp, err := http.Get("http://" + d.addr + "/index.html")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "kiosk" {
		t.Errorf("web root relative to the config: %d %q", resp.StatusCode, body)
	}
	if _, err := os.Stat(filepath.Join(dir, "wsbridge.pid")); err != nil {
		t.Errorf("pid_file relative to the config: %v", err)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(t, 20*time.Second); code != 0 {
		t.Errorf("service run after SIGTERM: exit %d, want 0\n%s", code, d.log())
	}
	if !strings.Contains(d.log(), "msg=stopped") {
		t.Errorf("no stop line:\n%s", d.log())
	}

	// A port in use: the daemon fails, the process exits 1.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := writeConfig(t, "listen = \""+ln.Addr().String()+"\"\n"+vncTarget)
	if code, out := exitStatus(t, "service", "run", "-config", busy); code != 1 || !strings.Contains(out, "address already in use") {
		t.Errorf("service run on a busy port: exit %d, want 1:\n%s", code, out)
	}
}

// lockedLog is a log destination that a test reads while the daemon
// writes it.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServiceManagerReload drives the daemon's side of a Windows reload:
// the service handler turns "parameters changed" into a value on
// procOptions.reload, which must reload bridge.hcl like SIGHUP.
func TestServiceManagerReload(t *testing.T) {
	path := writeConfig(t, "listen = \"127.0.0.1:0\"\ndrain_timeout = \"100ms\"\n"+vncTarget)
	reload := make(chan struct{}, 1)
	logs := &lockedLog{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, fileLoader(path), &procOptions{reload: reload}, logs) }()
	waitFor := func(s string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if strings.Contains(logs.String(), s) {
				return
			}
		}
		t.Fatalf("no %q in the log:\n%s", s, logs)
	}
	waitFor("msg=listening")
	if err := os.WriteFile(path, []byte("listen = \"127.0.0.1:0\"\ndrain_timeout = \"100ms\"\ntarget \"ssh\" {\n  address = \"127.0.0.1:22\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reload <- struct{}{}
	waitFor(`msg=reloaded changed="target \"ssh\", target \"vnc\""`)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}
