package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./service -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from what was rendered:\n%s", path, got)
	}
}

// specs are the cases every platform's files are rendered for.
var specs = []struct {
	name string
	spec Spec
}{
	{"default", Spec{Executable: "/usr/bin/wsbridge", Config: "/etc/wsbridge/bridge.hcl"}},
	{"lowport", Spec{
		Executable: "/opt/ws bridge/wsbridge", Config: "/srv/kiosk/bridge.hcl", User: "kiosk",
		LowPort: true, StopTimeout: 75 * time.Second,
		Writable: []string{"/var/lib/recordings", "/run/kiosk", "/var/lib/recordings"},
	}},
}

func TestSystemdUnitGolden(t *testing.T) {
	for _, c := range specs {
		t.Run(c.name, func(t *testing.T) {
			c.spec.OS = "linux"
			got, err := c.spec.Unit()
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "systemd-"+c.name+".service", got)
		})
	}
}

func TestLaunchdPlistGolden(t *testing.T) {
	for _, c := range specs {
		t.Run(c.name, func(t *testing.T) {
			c.spec.OS = "darwin"
			got, err := c.spec.Plist()
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "launchd-"+c.name+".plist", got)
		})
	}
	agent := Spec{OS: "darwin", UserLevel: true, Executable: "/usr/local/bin/wsbridge", Config: "/Users/kiosk/wsbridge/bridge.hcl"}
	got, err := agent.Plist()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "launchd-agent.plist", got)
}

func TestWindowsSettingsGolden(t *testing.T) {
	for _, c := range []struct {
		name string
		spec Spec
	}{
		{"default", Spec{Executable: `C:\Program Files\wsbridge\wsbridge.exe`, Config: `C:\ProgramData\wsbridge\bridge.hcl`}},
		{"account", Spec{Executable: `D:\wsbridge\wsbridge.exe`, Config: `D:\kiosk files\bridge.hcl`, User: `NT AUTHORITY\NetworkService`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.spec.OS = "windows"
			golden(t, "windows-"+c.name+".txt", c.spec.Windows().String())
		})
	}
}

// TestUnitContract checks the unit's promises directly, so that a golden
// file rewritten with -update cannot drop one unnoticed.
func TestUnitContract(t *testing.T) {
	plain, err := Spec{OS: "linux", Executable: "/usr/bin/wsbridge", Config: "/etc/wsbridge/bridge.hcl"}.Unit()
	if err != nil {
		t.Fatal(err)
	}
	low, err := Spec{OS: "linux", Executable: "/usr/bin/wsbridge", Config: "/etc/wsbridge/bridge.hcl", LowPort: true}.Unit()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"Restart=on-failure", "RestartSec=2s", "After=network-online.target", "User=wsbridge",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "Type=notify", "ExecReload=/bin/kill -HUP $MAINPID",
		`ExecStart=/usr/bin/wsbridge "service" "run" "-config" "/etc/wsbridge/bridge.hcl"`,
		"WorkingDirectory=/etc/wsbridge", "TimeoutStopSec=30",
	} {
		if !strings.Contains(plain, "\n"+line+"\n") {
			t.Errorf("unit lacks %q", line)
		}
	}
	if strings.Contains(plain, "AmbientCapabilities") || !strings.Contains(plain, "\nCapabilityBoundingSet=\n") {
		t.Error("a unit without a low port must grant no capability")
	}
	if !strings.Contains(low, "\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n") || !strings.Contains(low, "\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n") {
		t.Error("a unit with a low port must grant CAP_NET_BIND_SERVICE")
	}
	if strings.Contains(plain, "{{") || strings.Contains(plain, "@") && !strings.Contains(plain, "@system-service") {
		t.Errorf("unit has unexpanded parts:\n%s", plain)
	}
	plist, err := Spec{OS: "darwin", Executable: "/usr/local/bin/wsbridge", Config: "/usr/local/etc/wsbridge/bridge.hcl"}.Plist()
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range []string{"<key>RunAtLoad</key>\n\t<true/>", "<key>KeepAlive</key>\n\t<true/>", "<key>UserName</key>\n\t<string>nobody</string>"} {
		if !strings.Contains(plist, kv) {
			t.Errorf("plist lacks %q", kv)
		}
	}
	w := Spec{OS: "windows", Executable: `C:\wsbridge.exe`, Config: `C:\bridge.hcl`}.Windows()
	if !w.DelayedAutoStart || len(w.Recovery) == 0 || !w.RecoveryOnExitCode || w.StartType != "automatic" {
		t.Errorf("Windows settings %+v: want delayed automatic start and restarts on failure", w)
	}
}

// TestSystemdAnalyzeVerify gives the unit to systemd's own checker, with
// this test binary as the executable (verify wants it to exist).
func TestSystemdAnalyzeVerify(t *testing.T) {
	bin := testenv.Program(t, "systemd-analyze", "systemd")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range specs {
		t.Run(c.name, func(t *testing.T) {
			s := c.spec
			s.OS, s.Executable = "linux", exe
			unit, err := s.Unit()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "wsbridge.service")
			if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "verify", path).CombinedOutput()
			if err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s\n%s", err, out, unit)
			}
		})
	}
}

func TestSpecCheck(t *testing.T) {
	for _, c := range []struct {
		name string
		spec Spec
		want string
	}{
		{"relative config", Spec{OS: "linux", Executable: "/usr/bin/wsbridge", Config: "bridge.hcl"}, "not an absolute path"},
		{"relative executable", Spec{OS: "linux", Executable: "wsbridge", Config: "/etc/bridge.hcl"}, "not an absolute path"},
		{"quote", Spec{OS: "linux", Executable: "/usr/bin/wsbridge", Config: `/etc/a"b.hcl`}, "quotes"},
		{"newline", Spec{OS: "linux", Executable: "/usr/bin/wsbridge", Config: "/etc/a\nExecStartPre=/bin/sh"}, "control characters"},
		{"space in writable", Spec{OS: "linux", Executable: "/usr/bin/wsbridge", Config: "/etc/b.hcl", Writable: []string{"/var/my dir"}}, "spaces"},
		{"user level on linux", Spec{OS: "linux", Executable: "/usr/bin/wsbridge", Config: "/etc/b.hcl", UserLevel: true}, "macOS"},
		{"windows relative", Spec{OS: "windows", Executable: `C:\w.exe`, Config: `bridge.hcl`}, "not an absolute path"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.spec.Check()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Check() = %v, want an error saying %q", err, c.want)
			}
			if _, err := c.spec.Unit(); err == nil {
				t.Error("Unit() rendered a spec that Check refuses")
			}
		})
	}
	for _, s := range []Spec{
		{OS: "windows", Executable: `C:\Program Files\wsbridge\wsbridge.exe`, Config: `C:\ProgramData\wsbridge\bridge.hcl`},
		{OS: "darwin", UserLevel: true, Executable: "/usr/local/bin/wsbridge", Config: "/Users/a/bridge.hcl"},
	} {
		if err := s.Check(); err != nil {
			t.Errorf("Check(%+v) = %v", s, err)
		}
	}
}

func TestQuoteWindows(t *testing.T) {
	for in, want := range map[string]string{
		`C:\wsbridge.exe`:             `C:\wsbridge.exe`,
		`C:\Program Files\w.exe`:      `"C:\Program Files\w.exe"`,
		`C:\dir with space\`:          `"C:\dir with space\\"`,
		`say "hi"`:                    `"say \"hi\""`,
		`a\"b c`:                      `"a\\\"b c"`,
		"":                            `""`,
		`\\server\share\bridge.hcl`:   `\\server\share\bridge.hcl`,
		`\\server\my share\bridge.hc`: `"\\server\my share\bridge.hc"`,
	} {
		if got := quoteWindows(in); got != want {
			t.Errorf("quoteWindows(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestRender(t *testing.T) {
	data := map[string]any{"A": "x y", "B": "", "L": []string{"1", `"2"`}, "E": []string(nil)}
	for _, c := range []struct{ tmpl, want string }{
		{"{{A}}|{{A | cmdEscape}}|{{A | cmd}}", `x y|x\x20y|"x y"`},
		{"{{if A}}yes{{else}}no{{end}} {{if B}}yes{{else}}no{{end}}", "yes no"},
		{"{{range L}}[{{.}}:{{. | cmd}}]{{end}}", `[1:"1"]["2":"\"2\""]`},
		{"{{range E}}never{{end}}{{if E}}never{{end}}.", "."},
		{"{{if A}}{{if B}}n{{else}}{{range L}}{{.}}{{end}}{{end}}{{end}}", `1"2"`},
	} {
		got, err := Render(c.tmpl, data, systemdFuncs)
		if err != nil || got != c.want {
			t.Errorf("Render(%q) = %q, %v; want %q", c.tmpl, got, err, c.want)
		}
	}
	for _, bad := range []string{"{{Missing}}", "{{if A}}open", "{{end}}", "{{A | nofunc}}", "{{range A}}{{end}}", "{{- A}}", "{{L}}", "{{A"} {
		if got, err := Render(bad, data, systemdFuncs); err == nil {
			t.Errorf("Render(%q) = %q, want an error", bad, got)
		}
	}
}

// recordingLogger keeps what the event sink sends to the event log.
type recordingLogger struct{ lines []string }

func (r *recordingLogger) add(kind string, v ...any) error {
	r.lines = append(r.lines, kind+" "+fmt.Sprint(v...))
	return nil
}
func (r *recordingLogger) Error(v ...any) error   { return r.add("E", v...) }
func (r *recordingLogger) Warning(v ...any) error { return r.add("W", v...) }
func (r *recordingLogger) Info(v ...any) error    { return r.add("I", v...) }
func (r *recordingLogger) Errorf(f string, a ...any) error {
	return r.add("E", fmt.Sprintf(f, a...))
}
func (r *recordingLogger) Warningf(f string, a ...any) error {
	return r.add("W", fmt.Sprintf(f, a...))
}
func (r *recordingLogger) Infof(f string, a ...any) error { return r.add("I", fmt.Sprintf(f, a...)) }

func TestEventSink(t *testing.T) {
	rec := &recordingLogger{}
	sink := eventSink(rec)
	sink(slog.LevelDebug, "msg=debug\n")
	sink(slog.LevelInfo, "msg=listening addr=127.0.0.1:6080\n")
	sink(slog.LevelWarn, "msg=refused reason=origin\n")
	sink(slog.LevelError, "msg=listener err=gone\n")
	want := []string{
		"I msg=debug",
		"I msg=listening addr=127.0.0.1:6080",
		"W msg=refused reason=origin",
		"E msg=listener err=gone",
	}
	if strings.Join(rec.lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(rec.lines, "\n"), strings.Join(want, "\n"))
	}
}

// TestRunStops runs a daemon through kardianos/service's Run: ending the
// context stops it and Run returns its result; a daemon that fails by
// itself ends Run with its error, so the process exits non-zero.
func TestRunStops(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, func(ctx context.Context, _ <-chan struct{}) error {
			close(started)
			<-ctx.Done()
			return nil
		})
	}()
	<-started
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after stop = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}

	boom := errors.New("listener: address in use")
	err := Run(t.Context(), func(context.Context, <-chan struct{}) error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("Run with a failing daemon = %v, want %v", err, boom)
	}
}

// TestCanInstallRefusesWithoutInit: where PID 1 is neither systemd nor an
// init (this container, CI), Install must refuse rather than write SysV
// scripts nothing runs.
func TestCanInstallRefusesWithoutInit(t *testing.T) {
	comm, err := os.ReadFile("/proc/1/comm")
	if err != nil {
		t.Skip("no /proc/1/comm: not Linux")
	}
	pid1 := strings.TrimSpace(string(comm))
	if _, err := os.Stat("/run/systemd/system"); err == nil || pid1 == "systemd" || pid1 == "init" {
		t.Skipf("PID 1 is %s: an init system runs here", pid1)
	}
	err = CanInstall()
	if !errors.Is(err, ErrNoInitSystem) || !strings.Contains(err.Error(), pid1) {
		t.Errorf("CanInstall() = %v, want ErrNoInitSystem naming PID 1 (%s)", err, pid1)
	}
	m, err := NewManager(Spec{Executable: "/usr/bin/wsbridge", Config: "/etc/wsbridge/bridge.hcl"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Install(); !errors.Is(err, ErrNoInitSystem) {
		t.Errorf("Install() = %v, want ErrNoInitSystem", err)
	}
	// Regular files only: the packaging test's purge masks the unit with a
	// symlink for a moment.
	for _, f := range []string{"/etc/init.d/wsbridge", "/etc/systemd/system/wsbridge.service"} {
		if fi, err := os.Lstat(f); err == nil && fi.Mode().IsRegular() {
			t.Errorf("%s exists after a refused install", f)
		}
	}
}
