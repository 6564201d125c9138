package bridge_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/internal/testenv"
	"github.com/wsbridge/wsbridge/internal/testpki"
	"github.com/wsbridge/wsbridge/internal/tlsfiles"
	"github.com/wsbridge/wsbridge/targets"
)

// tlsSetup is a CA, a server certificate for 127.0.0.1 and the names
// given, written to files, and a Store over them.
type tlsSetup struct {
	ca        *testpki.CA
	dir       string
	cert, key string
	store     *tlsfiles.Store
}

func newTLS(t testing.TB, o *tlsfiles.Options, names ...string) *tlsSetup {
	t.Helper()
	s := &tlsSetup{ca: testpki.NewCA(t, "test CA"), dir: t.TempDir()}
	leaf := s.ca.Server(t, "bridge", append([]string{"127.0.0.1"}, names...)...)
	s.cert, s.key = leaf.Write(t, s.dir, "server")
	opts := tlsfiles.Options{}
	if o != nil {
		opts = *o
	}
	opts.Pairs = append([]tlsfiles.Pair{{Cert: s.cert, Key: s.key}}, opts.Pairs...)
	var err error
	if s.store, err = tlsfiles.Load(&opts); err != nil {
		t.Fatal(err)
	}
	return s
}

// clientTLS trusts the setup's CA and presents certs.
func (s *tlsSetup) clientTLS(serverName string, certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: s.ca.Pool(), ServerName: serverName, Certificates: certs}
}

// dialTLS opens a WebSocket over TLS with cfg.
func dialTLS(ctx context.Context, url string, cfg *tls.Config) (*websocket.Conn, *http.Response, error) {
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
}

// peerSerial returns the serial of the certificate the bridge presents
// for serverName.
func peerSerial(t testing.TB, addr string, cfg *tls.Config) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func TestTLSHandshakeAndSNI(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "sni CA")
	a := ca.Server(t, "a", "a.test", "127.0.0.1")
	b := ca.Server(t, "b", "b.test")
	acert, akey := a.Write(t, dir, "a")
	bcert, bkey := b.Write(t, dir, "b")
	store, err := tlsfiles.Load(&tlsfiles.Options{Pairs: []tlsfiles.Pair{{Cert: acert, Key: akey}, {Cert: bcert, Key: bkey}}})
	if err != nil {
		t.Fatal(err)
	}
	br := startBridge(t, static(target(t, echo)), nil, &bridge.Options{TLS: store.Config()})
	addr := strings.TrimPrefix(br.url, "wss://")

	for _, tt := range []struct{ sni, want string }{
		{"a.test", a.Cert.SerialNumber.String()},
		{"b.test", b.Cert.SerialNumber.String()},
		{"", a.Cert.SerialNumber.String()}, // no SNI: the first
	} {
		cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: tt.sni}
		if tt.sni == "" {
			cfg.ServerName = "127.0.0.1"
		}
		if got := peerSerial(t, addr, cfg); got != tt.want {
			t.Errorf("SNI %q: certificate %s, want %s", tt.sni, got, tt.want)
		}
	}

	c, _, err := dialTLS(t.Context(), br.url, &tls.Config{RootCAs: ca.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.Write(t.Context(), websocket.MessageBinary, []byte("over tls"))
	if _, m, err := c.Read(t.Context()); err != nil || string(m) != "over tls" {
		t.Fatalf("echo over wss = %q, %v", m, err)
	}

	// TLS 1.1 and older are refused; HTTP/2 is never chosen.
	if _, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "a.test", MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("a TLS 1.1 handshake succeeded")
	}
	tc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "a.test", NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Errorf("ALPN chose %q, want http/1.1", p)
	}
	tc.Close()

	// Plain HTTP on a TLS-only port gets a readable 400.
	resp := rawHandshake(t, "ws://"+addr, "/")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(body), "TLS only") {
		t.Errorf("plain request on the TLS port: %d %q", resp.StatusCode, body)
	}
}

func TestTLSAndPlainOnOnePort(t *testing.T) {
	s := newTLS(t, nil)
	br := startBridge(t, static(target(t, echo)), nil, &bridge.Options{TLS: s.store.Config(), AllowPlain: true})
	plainURL := strings.Replace(br.url, "wss://", "ws://", 1)
	for _, url := range []string{br.url, plainURL} {
		c, _, err := dialTLS(t.Context(), url, s.clientTLS("127.0.0.1"))
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		c.Write(t.Context(), websocket.MessageBinary, []byte(url))
		if _, m, err := c.Read(t.Context()); err != nil || string(m) != url {
			t.Fatalf("%s: echo %q, %v", url, m, err)
		}
		c.Close(websocket.StatusNormalClosure, "")
	}
}

// stream is one session that sends messages and checks their echo until
// stop, and counts them.
func stream(ctx context.Context, url string, cfg *tls.Config, stop <-chan struct{}, n *atomic.Int64) error {
	c, _, err := dialTLS(ctx, url, cfg)
	if err != nil {
		return err
	}
	defer c.CloseNow()
	msg := bytes.Repeat([]byte("0123456789abcdef"), 64)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return c.Close(websocket.StatusNormalClosure, "done")
		default:
		}
		msg[0] = byte(i)
		if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
			return fmt.Errorf("message %d: write: %w", i, err)
		}
		got := 0
		for got < len(msg) {
			_, m, err := c.Read(ctx)
			if err != nil {
				return fmt.Errorf("message %d: read: %w", i, err)
			}
			if !bytes.Equal(m, msg[got:got+len(m)]) {
				return fmt.Errorf("message %d: bytes differ", i)
			}
			got += len(m)
		}
		n.Add(1)
	}
}

func TestTLSReloadKeepsSessions(t *testing.T) {
	s := newTLS(t, nil)
	br := startBridge(t, static(target(t, echo)), nil, &bridge.Options{TLS: s.store.Config()})
	addr := strings.TrimPrefix(br.url, "wss://")
	oldSerial := peerSerial(t, addr, s.clientTLS("127.0.0.1"))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var watch sync.WaitGroup
	watch.Go(func() { s.store.Watch(ctx, 20*time.Millisecond) })
	defer watch.Wait()
	defer cancel()

	const sessions = 50
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var msgs atomic.Int64
	errs := make(chan error, sessions)
	for range sessions {
		wg.Go(func() {
			if err := stream(ctx, br.url, s.clientTLS("127.0.0.1"), stop, &msgs); err != nil {
				errs <- err
			}
		})
	}
	waitFor(t, func() bool { return br.srv.Active() == sessions })
	before := msgs.Load()

	// Renew: a new certificate from the same CA, written by rename.
	leaf := s.ca.Server(t, "bridge renewed", "127.0.0.1")
	leaf.Write(t, s.dir, "server")
	newSerial := leaf.Cert.SerialNumber.String()
	waitFor(t, func() bool { return peerSerial(t, addr, s.clientTLS("127.0.0.1")) == newSerial })
	if newSerial == oldSerial {
		t.Fatal("the renewed certificate has the old serial")
	}
	// The old sessions carry on after the reload.
	after := msgs.Load()
	waitFor(t, func() bool { return msgs.Load() > after+sessions })
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a session failed across the reload: %v", err)
	}
	if br.srv.Total() != sessions {
		t.Errorf("%d sessions were made, want %d (none may reconnect)", br.srv.Total(), sessions)
	}
	t.Logf("%d messages before the reload, %d in all", before, msgs.Load())
}

// waitFor polls cond for up to 10 s.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMutualTLS(t *testing.T) {
	clientCA := testpki.NewCA(t, "client CA")
	caFile := t.TempDir() + "/clients.pem"
	testpki.WriteFile(t, caFile, clientCA.PEM)
	ops := clientCA.Client(t, "ops", "ops.example").TLS(t)
	dev := clientCA.Client(t, "dev").TLS(t)
	stranger := testpki.NewCA(t, "other CA").Client(t, "ops").TLS(t)

	t.Run("required", func(t *testing.T) {
		s := newTLS(t, &tlsfiles.Options{ClientCA: caFile, RequireClientCert: true})
		br := startBridge(t, static(target(t, echo)), nil, &bridge.Options{TLS: s.store.Config()})
		c, _, err := dialTLS(t.Context(), br.url, s.clientTLS("127.0.0.1", ops))
		if err != nil {
			t.Fatalf("with a good client certificate: %v", err)
		}
		c.Close(websocket.StatusNormalClosure, "")
		for name, certs := range map[string][]tls.Certificate{"none": nil, "other CA": {stranger}} {
			if _, _, err := dialTLS(t.Context(), br.url, s.clientTLS("127.0.0.1", certs...)); err == nil {
				t.Errorf("client certificate %s: the handshake succeeded", name)
			}
		}
	})

	t.Run("identities", func(t *testing.T) {
		var dials atomic.Int32
		addr := target(t, func(c net.Conn) { dials.Add(1); echo(c) })
		admin := target(t, func(c net.Conn) { dials.Add(1); echo(c) })
		s := newTLS(t, &tlsfiles.Options{ClientCA: caFile})
		routes := []targets.Route{
			{Path: "/", Target: targets.Target{Name: "desk", Network: "tcp", Address: addr}},
			{Path: "/admin", Target: targets.Target{Name: "admin", Network: "tcp", Address: admin,
				Settings: &targets.Settings{Identities: []string{"cn:ops"}}}},
		}
		br := startBridge(t, routes, nil, &bridge.Options{
			TLS:        s.store.Config(),
			AllowPlain: true,
			Auth:       &bridge.Auth{Require: true, Allow: []string{"cert:ops.example", "cn:dev"}},
		})
		plain := strings.Replace(br.url, "wss://", "ws://", 1)
		for _, tt := range []struct {
			name   string
			url    string
			certs  []tls.Certificate
			status int
		}{
			{"ops by SAN", br.url + "/", []tls.Certificate{ops}, 101},
			{"dev by CN", br.url + "/", []tls.Certificate{dev}, 101},
			{"no certificate", br.url + "/", nil, 401},
			{"plain HTTP", plain + "/", nil, 401},
			{"ops to admin", br.url + "/admin", []tls.Certificate{ops}, 101},
			{"dev to admin", br.url + "/admin", []tls.Certificate{dev}, 403},
		} {
			before := dials.Load()
			c, resp, err := dialTLS(t.Context(), tt.url, s.clientTLS("127.0.0.1", tt.certs...))
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			if err == nil {
				c.Close(websocket.StatusNormalClosure, "")
			}
			if status != tt.status {
				t.Errorf("%s: status %d (%v), want %d", tt.name, status, err, tt.status)
			}
			if tt.status == 101 && status == 101 {
				waitDialled(t, &dials, before)
			}
			if tt.status != 101 && dials.Load() != before {
				t.Errorf("%s: refused, yet a target was dialled", tt.name)
			}
		}
	})

	t.Run("plain side door closed", func(t *testing.T) {
		s := newTLS(t, &tlsfiles.Options{ClientCA: caFile, RequireClientCert: true})
		br := startBridge(t, static(target(t, echo)), nil, &bridge.Options{TLS: s.store.Config(), AllowPlain: true, RequireClientCert: true})
		plain := strings.Replace(br.url, "wss://", "ws://", 1)
		_, resp, err := websocket.Dial(t.Context(), plain, nil)
		if err == nil || resp == nil || resp.StatusCode != 403 {
			t.Fatalf("plain upgrade on a client-certificate listener: %v %v", resp, err)
		}
	})
}

func TestTargetTLS(t *testing.T) {
	ca := testpki.NewCA(t, "target CA")
	leaf := ca.Server(t, "target", "vnc.internal", "127.0.0.1")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf.TLS(t)}})
	if err != nil {
		t.Fatal(err)
	}
	addr := testenv.Serve(t, ln, echo)

	trusted := &tls.Config{RootCAs: ca.Pool()}
	for _, tt := range []struct {
		name   string
		cfg    *tls.Config
		status int
	}{
		{"trusted, name from address", trusted, 101},
		{"trusted, explicit name", &tls.Config{RootCAs: ca.Pool(), ServerName: "vnc.internal"}, 101},
		{"wrong name", &tls.Config{RootCAs: ca.Pool(), ServerName: "other.internal"}, 502},
		{"system roots", &tls.Config{}, 502},
	} {
		t.Run(tt.name, func(t *testing.T) {
			br := startBridge(t, static(addr), nil, &bridge.Options{TargetTLS: tt.cfg})
			c, resp, err := websocket.Dial(t.Context(), br.url, nil)
			if tt.status != 101 {
				if err == nil || resp == nil || resp.StatusCode != tt.status {
					t.Fatalf("got %v %v, want %d", resp, err, tt.status)
				}
				if !strings.Contains(br.log.logs(), "TLS toward target") {
					t.Errorf("the log does not say the target's TLS failed:\n%s", br.log.logs())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			c.Write(t.Context(), websocket.MessageBinary, []byte("to a TLS target"))
			if _, m, err := c.Read(t.Context()); err != nil || string(m) != "to a TLS target" {
				t.Fatalf("echo %q, %v", m, err)
			}
			c.Close(websocket.StatusNormalClosure, "")
		})
	}
}
