//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// wsbridge is the binary under test, built once by TestMain.
var wsbridge string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wsbridge-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	wsbridge = filepath.Join(dir, "wsbridge")
	if out, err := exec.Command("go", "build", "-o", wsbridge, "../../cmd/wsbridge").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need returns the path of a program the suite cannot do without. The
// suite runs only when asked for (make e2e), so a missing program is a
// failure that names its Debian package, never a skip.
func need(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: apt-get install %s", name, debianPackage)
	}
	return p
}

// needPython returns Debian's python3 once it has imported module, which
// debianPackage provides.
func needPython(t testing.TB, module, debianPackage string) string {
	t.Helper()
	python := need(t, "/usr/bin/python3", "python3")
	if out, err := exec.Command(python, "-c", "import "+module).CombinedOutput(); err != nil {
		t.Fatalf("python3 cannot import %s (%v: %s): apt-get install %s", module, err, strings.TrimSpace(string(out)), debianPackage)
	}
	return python
}

// artifactDir is where a failed test's logs and screenshots go:
// e2e-artifacts/TEST at the repository's root.
func artifactDir(t testing.TB) string {
	name := regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_")
	dir, err := filepath.Abs(filepath.Join("..", "..", "e2e-artifacts", name))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// keep saves the output of a program under the test's artifact folder if
// the test fails.
func keep(t testing.TB, name string, out *output) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		dir := artifactDir(t)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Log(err)
			return
		}
		path := filepath.Join(dir, name+".log")
		os.WriteFile(path, []byte(out.String()), 0o644)
		t.Logf("kept %s", path)
	})
}

// output collects a program's output while the test reads it.
type output struct {
	mu sync.Mutex
	b  strings.Builder
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// waitFor waits until the output matches re and returns the submatches.
func (o *output) waitFor(t testing.TB, re *regexp.Regexp, exited <-chan struct{}) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := re.FindStringSubmatch(o.String()); m != nil {
			return m
		}
		select {
		case <-exited:
			t.Fatalf("exited before printing %q:\n%s", re, o.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q within 20s:\n%s", re, o.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// daemon is a program the test started and stops at cleanup.
type daemon struct {
	cmd    *exec.Cmd
	out    *output
	exited chan struct{}
}

// start runs cmd with its output kept as name's artifact, and ends it
// with SIGTERM (then SIGKILL) at cleanup.
func start(t testing.TB, name string, cmd *exec.Cmd) *daemon {
	t.Helper()
	d := &daemon{cmd: cmd, out: &output{}, exited: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = d.out
	}
	cmd.Stderr = d.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		cmd.Wait()
		close(d.exited)
	}()
	keep(t, name, d.out)
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-d.exited
		}
	})
	return d
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startBridge runs `wsbridge run` on the configuration src (listen is set
// to a free loopback port) and returns the daemon and its address.
func startBridge(t testing.TB, src string) (*daemon, string) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "bridge.hcl")
	if err := os.WriteFile(cfg, []byte("listen = \"127.0.0.1:0\"\n"+src), 0o600); err != nil {
		t.Fatal(err)
	}
	d := start(t, "wsbridge", exec.Command(wsbridge, "run", "-config", cfg))
	return d, d.out.waitFor(t, listeningRE, d.exited)[1]
}

// run runs a command to its end and returns its standard output; it fails
// the test with the command's output when it exits non-zero.
func run(t testing.TB, name string, cmd *exec.Cmd) string {
	t.Helper()
	var stdout strings.Builder
	errs := &output{}
	if cmd.Stdout == nil {
		cmd.Stdout = &stdout
	}
	cmd.Stderr = errs
	keep(t, name, errs)
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, errs.String())
	}
	return stdout.String()
}
