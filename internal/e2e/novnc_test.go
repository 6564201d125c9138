//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/wsbridge/wsbridge/internal/testenv"
	"github.com/wsbridge/wsbridge/internal/testpki"
)

// The VNC screen: screen.py paints it red, with a green square at the top
// left and a blue one at the bottom right, and turns it yellow once
// "wsbridge" is typed.
const (
	screenW, screenH = 800, 600
)

var (
	red    = []int{0xd0, 0x20, 0x20}
	green  = []int{0x20, 0xc0, 0x20}
	blue   = []int{0x20, 0x20, 0xd0}
	yellow = []int{0xe0, 0xe0, 0x20}
)

// browserDir holds package.json and the npm modules (npm ci).
func browserDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "browser"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"playwright-core", "@novnc/novnc"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", m, "package.json")); err != nil {
			t.Fatalf("npm module %s missing: run npm ci --prefix internal/e2e/testdata/browser", m)
		}
	}
	return dir
}

// startScreen runs Xvnc on a free display and port with screen.py on it,
// and returns the VNC server's address.
func startScreen(t *testing.T) string {
	t.Helper()
	xvnc := need(t, "Xvnc", "tigervnc-standalone-server")
	python := needPython(t, "tkinter", "python3-tk")
	display := -1
	for n := 40; n < 100; n++ {
		_, e1 := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n))
		_, e2 := os.Stat(fmt.Sprintf("/tmp/.X%d-lock", n))
		if os.IsNotExist(e1) && os.IsNotExist(e2) {
			display = n
			break
		}
	}
	if display < 0 {
		t.Fatal("no free X display between :40 and :99")
	}
	port := freePort(t)
	x := start(t, "Xvnc", exec.Command(xvnc, fmt.Sprintf(":%d", display),
		"-geometry", fmt.Sprintf("%dx%d", screenW, screenH), "-depth", "24",
		"-rfbport", strconv.Itoa(port), "-interface", "127.0.0.1", "-nolisten", "tcp",
		"-SecurityTypes", "None", "-AlwaysShared", "-desktop", "e2e"))
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	waitPort(t, addr, x.exited)
	app := exec.Command(python, "testdata/screen.py", strconv.Itoa(screenW), strconv.Itoa(screenH))
	app.Env = append(os.Environ(), fmt.Sprintf("DISPLAY=:%d", display))
	s := start(t, "screen", app)
	s.out.waitFor(t, regexp.MustCompile(`ready`), s.exited)
	return addr
}

func freePort(t testing.TB) int { return testenv.FreePort(t) }

func waitPort(t testing.TB, addr string, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("exited before listening on %s", addr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after 20s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// npmWebRoot is a web root with the npm release of noVNC: its core and
// vendor folders (the package ships no page) and testdata/web's vnc.html.
func npmWebRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	pkg := filepath.Join(browserDir(t), "node_modules", "@novnc", "novnc")
	for _, src := range []string{filepath.Join(pkg, "core"), filepath.Join(pkg, "vendor"), "testdata/web"} {
		base := src
		dst := filepath.Join(root, filepath.Base(src))
		if src == "testdata/web" {
			dst = root
		}
		err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(base, p)
			if d.IsDir() {
				return os.MkdirAll(filepath.Join(dst, rel), 0o755)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// browserResult is what novnc.mjs saw.
type browserResult struct {
	PageStatus int      `json:"pageStatus"`
	PageCSP    string   `json:"pageCSP"`
	Status     string   `json:"status"`
	Canvas     []int    `json:"canvas"`
	Probes     [][]int  `json:"probes"`
	After      []int    `json:"after"`
	Error      string   `json:"error"`
	CSP        []string `json:"csp"`
	Console    []string `json:"console"`
}

type point struct {
	X   int   `json:"x"`
	Y   int   `json:"y"`
	RGB []int `json:"rgb,omitempty"`
}

// TestNoVNC opens noVNC in Chromium through wsbridge and works the remote
// screen: both noVNC releases, each over a plain path route, with the
// token in the URL, over wss with a test CA, and behind Basic auth.
func TestNoVNC(t *testing.T) {
	node := need(t, "node", "nodejs")
	need(t, "/usr/bin/chromium", "chromium")
	certutil := need(t, "certutil", "libnss3-tools")
	browser := browserDir(t)
	debian := "/usr/share/novnc"
	if _, err := os.Stat(filepath.Join(debian, "vnc.html")); err != nil {
		t.Fatal("Debian's noVNC is missing: apt-get install novnc")
	}

	// A CA that Chromium trusts through the NSS database in its HOME, as
	// an operator's own CA is trusted on a desktop.
	home := t.TempDir()
	ca := testpki.NewCA(t, "wsbridge e2e CA")
	caFile := filepath.Join(home, "ca.pem")
	os.WriteFile(caFile, ca.PEM, 0o644)
	nss := "sql:" + filepath.Join(home, ".pki", "nssdb")
	os.MkdirAll(filepath.Join(home, ".pki", "nssdb"), 0o700)
	run(t, "certutil", exec.Command(certutil, "-d", nss, "-N", "--empty-password"))
	run(t, "certutil", exec.Command(certutil, "-d", nss, "-A", "-t", "C,,", "-n", "wsbridge-e2e", "-i", caFile))
	certFile, keyFile := ca.Server(t, "127.0.0.1", "127.0.0.1").Write(t, home, "bridge")

	hash, err := bcrypt.GenerateFromPassword([]byte("e2e-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(home, "htpasswd")
	os.WriteFile(htpasswd, []byte("viewer:"+string(hash)+"\n"), 0o600)

	type noVNC struct {
		name, status string
		root         func(t *testing.T) string
	}
	releases := []noVNC{
		{"debian", "#noVNC_status", func(*testing.T) string { return debian }},
		{"npm", "#status", npmWebRoot},
	}
	cases := []struct {
		name   string
		config func(vnc string) string
		path   string // noVNC's path setting
		scheme string
		creds  map[string]string
	}{
		{"path", func(vnc string) string {
			return fmt.Sprintf("target \"vnc\" {\n  address = %q\n  path = \"/websockify\"\n}\n", vnc)
		}, "websockify", "http", nil},
		{"token", func(vnc string) string {
			return fmt.Sprintf("target \"vnc\" {\n  address = %q\n  token = \"e2e-token-7f3c\"\n}\n", vnc)
		}, "websockify?token=e2e-token-7f3c", "http", nil},
		{"wss", func(vnc string) string {
			return fmt.Sprintf("tls {\n  cert = %q\n  key = %q\n}\ntarget \"vnc\" {\n  address = %q\n  path = \"/websockify\"\n}\n", certFile, keyFile, vnc)
		}, "websockify", "https", nil},
		{"basic", func(vnc string) string {
			return fmt.Sprintf("auth {\n  htpasswd = %q\n  require = true\n  web = true\n}\ntarget \"vnc\" {\n  address = %q\n  path = \"/websockify\"\n}\n", htpasswd, vnc)
		}, "websockify", "http", map[string]string{"username": "viewer", "password": "e2e-password"}},
	}
	for _, rel := range releases {
		for _, tc := range cases {
			t.Run(rel.name+"/"+tc.name, func(t *testing.T) {
				vnc := startScreen(t)
				root := rel.root(t)
				bridge, addr := startBridge(t, fmt.Sprintf("web = %q\n", root)+tc.config(vnc))
				page := fmt.Sprintf("%s://%s/vnc.html?autoconnect=1&path=%s", tc.scheme, addr, url.QueryEscape(tc.path))
				args := map[string]any{
					"url":       page,
					"status":    rel.status,
					"probes":    []point{{X: 50, Y: 50}, {X: screenW - 50, Y: screenH - 50}, {X: screenW / 2, Y: screenH / 2}},
					"before":    point{X: screenW / 2, Y: screenH / 2, RGB: red},
					"type":      "wsbridge",
					"after":     point{X: screenW / 2, Y: screenH / 2, RGB: yellow},
					"artifacts": artifactDir(t),
				}
				if tc.creds != nil {
					args["credentials"] = tc.creds
				}
				js, _ := json.Marshal(args)
				cmd := exec.Command(node, filepath.Join(browser, "novnc.mjs"), string(js))
				cmd.Env = append(os.Environ(), "HOME="+home)
				out := run(t, "node", cmd)
				var res browserResult
				if err := json.Unmarshal([]byte(lastLine(out)), &res); err != nil {
					t.Fatalf("novnc.mjs printed %q: %v", out, err)
				}
				checkBrowser(t, res, tc.scheme == "https")
				logs := bridge.out.String()
				if !strings.Contains(logs, "target=\"vnc=") {
					// The session's line comes when it ends; the page has
					// closed by now.
					time.Sleep(500 * time.Millisecond)
					logs = bridge.out.String()
				}
				if strings.Contains(logs, "e2e-token-7f3c") || strings.Contains(logs, "e2e-password") {
					t.Errorf("a secret reached the log:\n%s", logs)
				}
				if !strings.Contains(logs, "target=\"vnc=") {
					t.Errorf("the bridge logged no VNC session:\n%s", logs)
				}
			})
		}
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// checkBrowser judges what the browser saw.
func checkBrowser(t *testing.T, res browserResult, encrypted bool) {
	t.Helper()
	if res.Error != "" {
		t.Errorf("browser: %s (status %q)", res.Error, res.Status)
	}
	if res.PageStatus != 200 {
		t.Errorf("vnc.html answered %d", res.PageStatus)
	}
	if !strings.Contains(res.PageCSP, "connect-src 'self'") {
		t.Errorf("vnc.html came with CSP %q, want connect-src 'self'", res.PageCSP)
	}
	if len(res.CSP) > 0 {
		t.Errorf("the page broke its CSP: %q", res.CSP)
	}
	if !strings.Contains(res.Status, "Connected") {
		t.Errorf("status %q, want Connected", res.Status)
	}
	if strings.Contains(res.Status, "unencrypted") == encrypted && strings.Contains(res.Status, "crypted") {
		t.Errorf("status %q, want encrypted = %v", res.Status, encrypted)
	}
	if len(res.Canvas) != 2 || res.Canvas[0] != screenW || res.Canvas[1] != screenH {
		t.Errorf("canvas %v, want the VNC screen's %dx%d", res.Canvas, screenW, screenH)
	}
	want := [][]int{green, blue, red}
	for i, p := range res.Probes {
		if !near(p, want[i]) {
			t.Errorf("probe %d is %v, want %v: the canvas does not show the screen", i, p, want[i])
		}
	}
	if len(res.Probes) != len(want) {
		t.Errorf("probes %v, want %d", res.Probes, len(want))
	}
	if !near(res.After, yellow) {
		t.Errorf("after typing the centre is %v, want yellow %v", res.After, yellow)
	}
	if t.Failed() {
		t.Logf("browser console:\n%s", strings.Join(res.Console, "\n"))
	}
}

func near(a, b []int) bool {
	if len(a) != 3 || len(b) != 3 {
		return false
	}
	for i := range a {
		if d := a[i] - b[i]; d < -24 || d > 24 {
			return false
		}
	}
	return true
}
