package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wsbridge/wsbridge/internal/testenv"
)

// stream is one client that sends a deterministic byte stream through an
// echo target and checks that every byte comes back in order.
type stream struct {
	ws       *websocket.Conn
	sent     int64
	got      int64
	mismatch error
	closed   chan websocket.StatusCode // the close code the client saw
	mu       sync.Mutex
}

func openStream(t *testing.T, url string, seed uint64) *stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"binary"}})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	ws.SetReadLimit(1 << 20)
	s := &stream{ws: ws, closed: make(chan websocket.StatusCode, 1)}
	want := rand.New(rand.NewPCG(seed, 1))
	go func() {
		for {
			_, p, err := ws.Read(context.Background())
			if err != nil {
				s.closed <- websocket.CloseStatus(err)
				return
			}
			s.mu.Lock()
			for _, b := range p {
				if w := byte(want.Uint32()); b != w && s.mismatch == nil {
					s.mismatch = fmt.Errorf("byte %d: got %#x, want %#x", s.got, b, w)
				}
				s.got++
			}
			s.mu.Unlock()
		}
	}()
	return s
}

// seq returns the first n bytes of the stream seed makes, what openStream
// expects back.
func seq(seed uint64, n int) []byte {
	src := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(src.Uint32())
	}
	return b
}

// pump writes chunks until stop is closed or a write fails.
func (s *stream) pump(seed uint64, stop <-chan struct{}) error {
	src := rand.New(rand.NewPCG(seed, 1))
	buf := make([]byte, 4096)
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		for i := range buf {
			buf[i] = byte(src.Uint32())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.ws.Write(ctx, websocket.MessageBinary, buf)
		cancel()
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.sent += int64(len(buf))
		s.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

// send writes p as one message.
func (s *stream) send(t *testing.T, p []byte) {
	t.Helper()
	if err := s.ws.Write(t.Context(), websocket.MessageBinary, p); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.sent += int64(len(p))
	s.mu.Unlock()
}

// settle waits until every byte sent has come back.
func (s *stream) settle(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		s.mu.Lock()
		sent, got, bad := s.sent, s.got, s.mismatch
		s.mu.Unlock()
		if bad != nil {
			return bad
		}
		if got == sent {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d bytes came back", got, sent)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const reloadConfig = `listen = "127.0.0.1:0"
reload_grace = "%s"
http {
  allow_no_origin = true
}
admin {
  listen = "127.0.0.1:0"
}
limits {
  per_ip_sessions = 0
  per_ip_rate = 0
  max_sessions = %d
}
target "keep" {
  address = "%s"
  path = "/keep"
}
%s
`

func TestReloadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("streams for seconds")
	}
	keep := testenv.Listen(t, "tcp", "127.0.0.1:0", testenv.Echo)
	gone := testenv.Listen(t, "tcp", "127.0.0.1:0", testenv.Echo)
	goneBlock := fmt.Sprintf("target \"gone\" {\n  address = %q\n  path = \"/gone\"\n}\n", gone)
	path := writeConfig(t, fmt.Sprintf(reloadConfig, "1s", 500, keep, goneBlock))
	d := startDaemon(t, "run", "-config", path)
	base := "ws://" + d.addr

	const n = 50
	stop := make(chan struct{})
	var wg sync.WaitGroup
	streams := make([]*stream, n)
	pumpErrs := make([]error, n)
	for i := range n {
		streams[i] = openStream(t, base+"/keep", uint64(i))
		wg.Go(func() { pumpErrs[i] = streams[i].pump(uint64(i), stop) })
	}
	doomed := make([]*stream, 5)
	doomStop := make(chan struct{})
	for i := range doomed {
		doomed[i] = openStream(t, base+"/gone", uint64(100+i))
		go doomed[i].pump(uint64(100+i), doomStop)
	}
	time.Sleep(500 * time.Millisecond)

	// A broken file is refused with its position, and changes nothing.
	if err := os.WriteFile(path, []byte("listen = \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	if !d.waitLog(t, "reload refused") {
		t.Fatalf("no refusal logged:\n%s", d.log())
	}
	if !strings.Contains(d.log(), "bridge.hcl:1:") {
		t.Errorf("the refusal does not say where the mistake is:\n%s", d.log())
	}
	probe := openStream(t, base+"/gone", 999)
	probe.ws.Close(websocket.StatusNormalClosure, "")
	// The probe's session ends on the bridge's side a moment after its
	// close; it must not be among the sessions the reload closes.
	admin := adminAddr(t, d)
	for deadline := time.Now().Add(5 * time.Second); value(scrape(t, admin), "wsbridge_sessions_active", map[string]string{"target": "gone"}) != 5; {
		if time.Now().After(deadline) {
			t.Fatal("the probe session did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The good file drops "gone" and changes a limit.
	if err := os.WriteFile(path, []byte(fmt.Sprintf(reloadConfig, "1s", 400, keep, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	reloadedAt := time.Now()
	d.cmd.Process.Signal(syscall.SIGHUP)
	if !d.waitLog(t, "msg=reloaded") {
		t.Fatalf("no reload logged:\n%s", d.log())
	}
	for _, want := range []string{`target \"gone\"`, "limits", "removed_targets=gone", "sessions_closing=5"} {
		if !strings.Contains(d.log(), want) {
			t.Errorf("the reload line lacks %s:\n%s", want, d.log())
		}
	}
	for i, s := range doomed {
		select {
		case code := <-s.closed:
			if code != websocket.StatusServiceRestart {
				t.Errorf("session %d of the removed target closed with %d, want 1012", i, code)
			}
			if took := time.Since(reloadedAt); took < 900*time.Millisecond {
				t.Errorf("session %d closed %v after the reload, before its 1s grace", i, took)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("session %d of the removed target still open", i)
		}
	}
	close(doomStop)
	if st := statusOf(t, "ws://"+d.addr+"/gone"); st != http.StatusNotFound {
		t.Errorf("new handshake to the removed target: %d, want 404", st)
	}

	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	var total int64
	for i, s := range streams {
		if pumpErrs[i] != nil {
			t.Errorf("session %d dropped during the reloads: %v", i, pumpErrs[i])
			continue
		}
		if err := s.settle(10 * time.Second); err != nil {
			t.Errorf("session %d: %v", i, err)
		}
		total += s.sent
		s.ws.Close(websocket.StatusNormalClosure, "")
	}
	t.Logf("%d sessions streamed %d bytes each way through two reloads, none lost", n, total)
}

// scrape reads /metrics with Prometheus's own text parser.
func scrape(t *testing.T, admin string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value sums the samples of name whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	var sum float64
	for _, m := range f.GetMetric() {
		ok := true
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				found = found || l.GetName() == k && l.GetValue() == v
			}
			ok = ok && found
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

var adminRE = `msg="admin listening" addr=`

func adminAddr(t *testing.T, d *process) string {
	t.Helper()
	if !d.waitLog(t, adminRE) {
		t.Fatalf("no admin listener:\n%s", d.log())
	}
	s := d.log()
	s = s[strings.Index(s, adminRE)+len(adminRE):]
	return strings.Fields(s)[0]
}

func TestMetricsAddUp(t *testing.T) {
	echo := testenv.Listen(t, "tcp", "127.0.0.1:0", testenv.Echo)
	path := writeConfig(t, fmt.Sprintf(`listen = "127.0.0.1:0"
http {
  allow_no_origin = true
}
admin {
  listen = "127.0.0.1:0"
  ready_targets = ["echo"]
  self_check = true
}
limits {
  per_ip_sessions = 0
  per_ip_rate = 0
}
target "echo" {
  address = %q
  path = "/echo"
}
target "dead" {
  address = "127.0.0.1:1"
  path = "/dead"
}
`, echo))
	d := startDaemon(t, "run", "-config", path)
	admin := adminAddr(t, d)

	const rounds, live = 30, 10
	msg := make([]byte, 1000)
	for range rounds {
		s := openStream(t, "ws://"+d.addr+"/echo", 1)
		s.send(t, msg[:0:0])
		if err := s.settle(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		s.send(t, seq(1, len(msg)))
		if err := s.settle(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		s.ws.Close(websocket.StatusNormalClosure, "bye")
	}
	var open []*stream
	for range live {
		s := openStream(t, "ws://"+d.addr+"/echo", 1)
		s.send(t, seq(1, len(msg)))
		open = append(open, s)
	}
	for range 3 {
		if st := statusOf(t, "ws://"+d.addr+"/dead"); st != http.StatusBadGateway {
			t.Fatalf("dead target: %d, want 502", st)
		}
	}
	if st := statusOf(t, "ws://"+d.addr+"/nowhere"); st != http.StatusNotFound {
		t.Fatalf("unknown path: %d, want 404", st)
	}
	for _, s := range open {
		if err := s.settle(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}

	during := scrape(t, admin)
	if got := value(during, "wsbridge_sessions_active", map[string]string{"target": "echo"}); got != live {
		t.Errorf("sessions_active{echo} during = %v, want %d", got, live)
	}
	if got := value(during, "wsbridge_bytes_total", map[string]string{"direction": "in"}); got != float64((rounds+live)*len(msg)) {
		t.Errorf("bytes_total{in} during = %v, want %d", got, (rounds+live)*len(msg))
	}

	for _, s := range open {
		s.ws.Close(websocket.StatusNormalClosure, "bye")
	}
	// Sessions end on the daemon's side a moment after the client's close.
	var after map[string]*dto.MetricFamily
	for deadline := time.Now().Add(5 * time.Second); ; {
		after = scrape(t, admin)
		if value(after, "wsbridge_sessions_active", nil) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"wsbridge_sessions_active", nil, 0},
		{"wsbridge_sessions_total", map[string]string{"target": "echo", "outcome": "client", "close_code": "1000"}, rounds + live},
		{"wsbridge_sessions_started_total", nil, rounds + live},
		{"wsbridge_bytes_total", map[string]string{"direction": "in"}, float64((rounds + live) * len(msg))},
		{"wsbridge_bytes_total", map[string]string{"direction": "out"}, float64((rounds + live) * len(msg))},
		{"wsbridge_handshake_refusals_total", map[string]string{"reason": "target_unreachable"}, 3},
		{"wsbridge_handshake_refusals_total", map[string]string{"reason": "not_found"}, 1},
		{"wsbridge_target_errors_total", map[string]string{"target": "dead", "stage": "dial"}, 3},
		{"wsbridge_dial_duration_seconds", map[string]string{"target": "echo"}, rounds + live},
		{"wsbridge_build_info", nil, 1},
		{"wsbridge_config_last_reload_successful", nil, 1},
	}
	for _, c := range checks {
		if got := value(after, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for name, f := range after {
		if f.GetType() != dto.MetricType_GAUGE || name == "wsbridge_self_check_round_trip_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetGauge().GetValue() < 0 {
				t.Errorf("%s is negative: %v", name, m)
			}
		}
	}
	// Labels carry configured names and constants, never addresses.
	for name, f := range after {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "127.0.0.1") {
					t.Errorf("%s has a label with an address: %s=%s", name, l.GetName(), l.GetValue())
				}
			}
		}
	}

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/selfcheck": 200} {
		resp, err := http.Get("http://" + admin + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d, want %d:\n%s", path, resp.StatusCode, want, body)
		}
		if path == "/readyz" && (!strings.Contains(string(body), "target echo: ok") || !strings.Contains(string(body), "self_check: ok")) {
			t.Errorf("/readyz does not report its checks:\n%s", body)
		}
		t.Logf("GET %s: %s", path, strings.TrimSpace(string(body)))
	}
	if got := value(scrape(t, admin), "wsbridge_self_check_round_trip_seconds", nil); got <= 0 {
		t.Errorf("self-check round trip = %v, want > 0", got)
	}
	// The metrics are not on the bridge's own listener.
	if resp, err := http.Get("http://" + d.addr + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("/metrics is served on the bridge listener")
		}
	}
}

// TestReadyzFailsWhenTargetDown: a ready target that does not answer makes
// /readyz 503, so a balancer stops sending clients.
func TestReadyzFailsWhenTargetDown(t *testing.T) {
	path := writeConfig(t, `listen = "127.0.0.1:0"
admin {
  listen = "127.0.0.1:0"
  ready_targets = ["vnc"]
}
target "vnc" {
  address = "127.0.0.1:1"
}
`)
	d := startDaemon(t, "run", "-config", path)
	resp, err := http.Get("http://" + adminAddr(t, d) + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "target vnc: failed") {
		t.Errorf("/readyz = %d %q, want 503 naming the target", resp.StatusCode, body)
	}
}

var _ = errors.Is
var _ net.Conn

// TestSelfCheckPassesTheDoor: the self-check reaches its echo through a
// listener whose Host list, Origin rule and authentication refuse an
// ordinary client.
func TestSelfCheckPassesTheDoor(t *testing.T) {
	dir := t.TempDir()
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("alice:$2y$05$abcdefghijklmnopqrstuu5yqkGMyKX/8Ckpz6Xm8QsOt3Y5O2fXi\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, fmt.Sprintf(`listen = "127.0.0.1:0"
http {
  hosts = ["bridge.example"]
}
auth {
  htpasswd = %q
  require  = true
}
admin {
  listen     = "127.0.0.1:0"
  self_check = true
}
target "vnc" {
  address = "127.0.0.1:1"
}
`, htpasswd))
	d := startDaemon(t, "run", "-config", path)
	if st := statusOf(t, "ws://"+d.addr); st != http.StatusForbidden {
		t.Errorf("an ordinary client with Host 127.0.0.1: %d, want 403", st)
	}
	resp, err := http.Get("http://" + adminAddr(t, d) + "/selfcheck")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/selfcheck = %d %s", resp.StatusCode, body)
	}
}
