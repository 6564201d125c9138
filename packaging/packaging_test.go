//go:build linux

// Package packaging holds the release scripts' tests: `make dist` builds
// every archive, the .deb and the MSI, and the .deb is installed, used and
// purged on this machine.
package packaging

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/internal/testenv"
)

const version = "0.0.0-test"

// debVersion is version as a Debian version: the hyphen (which would mean
// a Debian revision) becomes "~", which sorts a prerelease first.
const debVersion = "0.0.0~test"

// TestDebianPackage builds the release with `make dist`, inspects the
// .deb and the MSI, installs the .deb with dpkg, checks what it put where,
// bridges a session through the installed binary running as the service
// would, then purges it and checks nothing is left. It changes the
// machine (a package, a system user), so it runs under CI=true, or
// locally with WSBRIDGE_PACKAGE_TEST=1 as root.
func TestDebianPackage(t *testing.T) {
	if !testenv.InCI() && os.Getenv("WSBRIDGE_PACKAGE_TEST") != "1" {
		t.Skip("installs a package and a system user: set WSBRIDGE_PACKAGE_TEST=1 (as root) to run it")
	}
	if os.Geteuid() != 0 {
		t.Fatal("dpkg -i needs root")
	}
	for prog, pkg := range map[string]string{"dpkg-deb": "dpkg", "wixl": "wixl", "msiinfo": "msitools", "zip": "zip", "unzip": "unzip",
		"systemd-analyze": "systemd", "sha256sum": "coreutils", "make": "make"} {
		testenv.Program(t, prog, pkg)
	}
	if out, err := exec.Command("dpkg-query", "-W", "wsbridge").CombinedOutput(); err == nil {
		t.Fatalf("wsbridge is installed already (%s): dpkg --purge wsbridge first", strings.TrimSpace(string(out)))
	}

	make := exec.Command("make", "dist", "VERSION="+version)
	make.Dir = ".."
	if out, err := make.CombinedOutput(); err != nil {
		t.Fatalf("make dist: %v\n%s", err, out)
	}
	dist := filepath.Join("..", "dist")
	checkDist(t, dist)
	checkMSI(t, filepath.Join(dist, "wsbridge-"+version+"-windows-amd64.msi"))

	arch := strings.TrimSpace(run(t, "dpkg", "--print-architecture"))
	deb := filepath.Join(dist, "wsbridge_"+debVersion+"_"+arch+".deb")
	checkDebContents(t, deb)

	t.Cleanup(func() {
		// A failed test must not leave the package behind for the next run.
		exec.Command("dpkg", "--purge", "wsbridge").Run()
	})
	run(t, "dpkg", "-i", deb)
	checkInstalled(t)
	bridgeThroughInstalled(t)
	run(t, "dpkg", "--purge", "wsbridge")
	checkPurged(t)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func checkDist(t *testing.T, dist string) {
	var want []string
	for _, osArch := range []string{"linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64"} {
		want = append(want, "wsbridge-"+version+"-"+osArch+".tar.gz")
	}
	want = append(want, "wsbridge-"+version+"-windows-amd64.zip", "wsbridge-"+version+"-windows-arm64.zip",
		"wsbridge-"+version+"-windows-amd64.msi", "wsbridge_"+debVersion+"_amd64.deb", "wsbridge_"+debVersion+"_arm64.deb")
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range want {
		if !strings.Contains(string(sums), "  "+f+"\n") {
			t.Errorf("SHA256SUMS does not list %s:\n%s", f, sums)
		}
	}
	cmd := exec.Command("sha256sum", "-c", "SHA256SUMS")
	cmd.Dir = dist
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: %v\n%s", err, out)
	}
	// Each archive holds its OS's binary, built for its architecture.
	for _, c := range []struct{ archive, member, magic string }{
		{"linux-arm64.tar.gz", "wsbridge", "\x7fELF"},
		{"darwin-arm64.tar.gz", "wsbridge", "\xcf\xfa\xed\xfe"},
		{"windows-arm64.zip", "wsbridge.exe", "MZ"},
	} {
		dir := t.TempDir()
		name := "wsbridge-" + version + "-" + c.archive
		if strings.HasSuffix(name, ".zip") {
			run(t, "unzip", "-q", filepath.Join(dist, name), "-d", dir)
		} else {
			run(t, "tar", "-C", dir, "-xzf", filepath.Join(dist, name))
		}
		base := strings.TrimSuffix(strings.TrimSuffix(name, ".tar.gz"), ".zip")
		b, err := os.ReadFile(filepath.Join(dir, base, c.member))
		if err != nil || !strings.HasPrefix(string(b), c.magic) {
			t.Errorf("%s: %s missing or not a %s binary (%v)", name, c.member, c.archive, err)
		}
		for _, f := range []string{"README.md", "bridge.hcl", "bridge.hcl.example"} {
			if _, err := os.Stat(filepath.Join(dir, base, f)); err != nil {
				t.Errorf("%s lacks %s", name, f)
			}
		}
	}
}

func checkMSI(t *testing.T, msi string) {
	svc := run(t, "msiinfo", "export", msi, "ServiceInstall")
	for _, s := range []string{"\twsbridge\t", `NT AUTHORITY\LocalService`, `service run -config "[CommonAppDataFolder]wsbridge\bridge.hcl"`} {
		if !strings.Contains(svc, s) {
			t.Errorf("MSI ServiceInstall lacks %q:\n%s", s, svc)
		}
	}
	files := run(t, "msiinfo", "export", msi, "File")
	for _, f := range []string{"wsbridge.exe", "bridge.hcl", "bridge.hcl.example"} {
		if !strings.Contains(files, "\t"+f+"\t") {
			t.Errorf("MSI File table lacks %s:\n%s", f, files)
		}
	}
	if ca := run(t, "msiinfo", "export", msi, "CustomAction"); !strings.Contains(ca, "service configure") {
		t.Errorf("MSI does not run `wsbridge service configure` (recovery actions):\n%s", ca)
	}
	if sc := run(t, "msiinfo", "export", msi, "ServiceControl"); !strings.Contains(sc, "\twsbridge\t") {
		t.Errorf("MSI does not start and stop the service:\n%s", sc)
	}
}

func checkDebContents(t *testing.T, deb string) {
	list := run(t, "dpkg-deb", "-c", deb)
	for _, p := range []string{"./usr/bin/wsbridge", "./etc/wsbridge/bridge.hcl", "./lib/systemd/system/wsbridge.service", "./usr/share/doc/wsbridge/bridge.hcl.example"} {
		if !strings.Contains(list, " "+p+"\n") {
			t.Errorf("dpkg-deb -c lacks %s:\n%s", p, list)
		}
	}
	info := run(t, "dpkg-deb", "-I", deb)
	for _, s := range []string{" Package: wsbridge\n", " Version: " + debVersion + "\n", " Recommends: novnc\n", "conffiles"} {
		if !strings.Contains(info, s) {
			t.Errorf("dpkg-deb -I lacks %q:\n%s", s, info)
		}
	}
	if conf := run(t, "dpkg-deb", "-f", deb, "Architecture"); strings.TrimSpace(conf) == "" {
		t.Error("no Architecture")
	}
}

func checkInstalled(t *testing.T) {
	u, err := user.Lookup("wsbridge")
	if err != nil {
		t.Fatalf("no wsbridge user after install: %v", err)
	}
	passwd := run(t, "getent", "passwd", "wsbridge")
	if !strings.HasSuffix(strings.TrimSpace(passwd), ":/usr/sbin/nologin") || len(u.Uid) > 3 {
		t.Errorf("wsbridge is not an unprivileged system user: %s", passwd)
	}
	fi, err := os.Stat("/etc/wsbridge/bridge.hcl")
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o640 || st.Uid != 0 || strconv.FormatUint(uint64(st.Gid), 10) != u.Gid {
		t.Errorf("/etc/wsbridge/bridge.hcl: mode %v uid %d gid %d, want 0640 root:wsbridge", fi.Mode().Perm(), st.Uid, st.Gid)
	}
	// The packaged unit is what `wsbridge service install` would write for
	// these paths, and systemd accepts it.
	unit, err := os.ReadFile("/lib/systemd/system/wsbridge.service")
	if err != nil {
		t.Fatal(err)
	}
	want := run(t, "/usr/bin/wsbridge", "service", "print", "-os", "linux", "-config", "/etc/wsbridge/bridge.hcl")
	if string(unit) != want {
		t.Errorf("packaged unit differs from `wsbridge service print`:\n%s\nwant:\n%s", unit, want)
	}
	if out, err := exec.Command("systemd-analyze", "verify", "/lib/systemd/system/wsbridge.service").CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, s := range []string{"User=wsbridge", "Restart=on-failure", "ProtectSystem=strict", "CapabilityBoundingSet="} {
		if !strings.Contains(string(unit), "\n"+s+"\n") {
			t.Errorf("unit lacks %s", s)
		}
	}
	if _, err := os.Lstat("/etc/systemd/system/multi-user.target.wants/wsbridge.service"); err != nil {
		t.Errorf("the unit is not enabled: %v", err)
	}
	if out, err := exec.Command("/usr/bin/wsbridge", "check", "-config", "/etc/wsbridge/bridge.hcl").CombinedOutput(); err != nil {
		t.Errorf("installed wsbridge check on the installed config: %v\n%s", err, out)
	}
}

// bridgeThroughInstalled runs the installed binary as the unit does (as
// user wsbridge, `service run` on the installed config) and bridges one session
// to an echo target on the configured 127.0.0.1:5900.
func bridgeThroughInstalled(t *testing.T) {
	target, err := net.Listen("tcp", "127.0.0.1:5900")
	if err != nil {
		t.Fatalf("the packaged config bridges to 127.0.0.1:5900, which is taken: %v", err)
	}
	testenv.Serve(t, target, testenv.Echo)

	u, err := user.Lookup("wsbridge")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	cmd := exec.Command("/usr/bin/wsbridge", "service", "run", "-config", "/etc/wsbridge/bridge.hcl")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	listening := make(chan struct{})
	var logs strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "msg=listening addr=127.0.0.1:6080") {
				once = true
				close(listening)
			}
		}
		done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	select {
	case <-listening:
	case err := <-done:
		t.Fatalf("installed wsbridge exited: %v\n%s", err, logs.String())
	case <-time.After(15 * time.Second):
		t.Fatal("installed wsbridge did not listen on 127.0.0.1:6080")
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://127.0.0.1:6080/", &websocket.DialOptions{
		Subprotocols: []string{"binary"},
		HTTPHeader:   http.Header{"Origin": {"http://127.0.0.1:6080"}},
	})
	if err != nil {
		t.Fatalf("dial the installed bridge: %v", err)
	}
	msg := []byte("RFB 003.008\n through the packaged wsbridge")
	if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
		t.Fatal(err)
	}
	_, got, err := c.Read(ctx)
	if err != nil || string(got) != string(msg) {
		t.Errorf("echo through the installed bridge: %q, %v", got, err)
	}
	c.Close(websocket.StatusNormalClosure, "")

	resp, err := http.Get("http://127.0.0.1:9680/metrics")
	if err != nil {
		t.Fatalf("the packaged admin listener: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `wsbridge_sessions_started_total 1`) {
		t.Errorf("metrics do not count the session:\n%.2000s", body)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("installed wsbridge after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("installed wsbridge did not stop after SIGTERM")
	}
}

func checkPurged(t *testing.T) {
	if err := exec.Command("dpkg-query", "-W", "wsbridge").Run(); err == nil {
		t.Error("dpkg still lists wsbridge after purge")
	}
	for _, p := range []string{"/usr/bin/wsbridge", "/etc/wsbridge", "/lib/systemd/system/wsbridge.service",
		"/etc/systemd/system/wsbridge.service", "/etc/systemd/system/multi-user.target.wants/wsbridge.service",
		"/var/lib/wsbridge", "/var/log/wsbridge", "/usr/share/doc/wsbridge"} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is left after purge (%v)", p, err)
		}
	}
	if _, err := user.Lookup("wsbridge"); err == nil {
		t.Error("the wsbridge user is left after purge")
	}
	if _, err := user.LookupGroup("wsbridge"); err == nil {
		t.Error("the wsbridge group is left after purge")
	}
	state, _ := filepath.Glob("/var/lib/systemd/deb-systemd-helper-*/*wsbridge*")
	more, _ := filepath.Glob("/var/lib/systemd/deb-systemd-helper-enabled/*/*wsbridge*")
	if left := slices.Concat(state, more); len(left) > 0 {
		t.Errorf("deb-systemd-helper state left after purge: %v", left)
	}
}
