package main

import (
	"crypto/tls"
	"net/http"
	"syscall"
	"testing"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/internal/testpki"
)

// TestWebsockifyTLSAndSIGHUP runs the binary with websockify's TLS options,
// renews the certificate and sends SIGHUP: a live session carries on and
// a new connection gets the new certificate.
func TestWebsockifyTLSAndSIGHUP(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "ops CA")
	first := ca.Server(t, "bridge", "127.0.0.1")
	cert, key := first.Write(t, dir, "bridge")
	target := interopTarget(t, "tcp", "127.0.0.1:0")
	d := startDaemon(t, "--cert", cert, "--key", key, "--ssl-only", "127.0.0.1:0", target)
	trust := &tls.Config{RootCAs: ca.Pool()}
	serial := func() string {
		c, err := tls.Dial("tcp", d.addr, trust)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := serial(); got != first.Cert.SerialNumber.String() {
		t.Fatalf("serving certificate %s, want %s", got, first.Cert.SerialNumber)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: trust}}
	ctx := t.Context()
	live, _, err := websocket.Dial(ctx, "wss://"+d.addr, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	defer live.CloseNow()
	echo := func(msg string) {
		t.Helper()
		live.Write(ctx, websocket.MessageBinary, []byte(msg))
		// The target echoes its first five bytes on their own.
		var got []byte
		for len(got) < len(msg) {
			_, m, err := live.Read(ctx)
			if err != nil {
				t.Fatalf("echo %q: %v", msg, err)
			}
			got = append(got, m...)
		}
		if string(got) != msg {
			t.Fatalf("echo %q = %q", msg, got)
		}
	}
	echo("before")

	second := ca.Server(t, "bridge renewed", "127.0.0.1")
	second.Write(t, dir, "bridge")
	d.cmd.Process.Signal(syscall.SIGHUP)
	if !d.waitLog(t, "msg=reloaded") {
		t.Fatalf("no reload line:\n%s", d.log())
	}
	if got := serial(); got != second.Cert.SerialNumber.String() {
		t.Fatalf("after SIGHUP serving %s, want %s", got, second.Cert.SerialNumber)
	}
	echo("after")
	live.Close(websocket.StatusNormalClosure, "")

	// --ssl-only: plain HTTP is told to use TLS.
	if st := statusOf(t, "ws://"+d.addr); st != 400 {
		t.Errorf("plain handshake on --ssl-only: %d, want 400", st)
	}
}

func TestWebsockifyBasicAuth(t *testing.T) {
	target := interopTarget(t, "tcp", "127.0.0.1:0")
	d := startDaemon(t, "--auth-plugin", "BasicHTTPAuth", "--auth-source", "desk:s3cret", "127.0.0.1:0", target)
	if st := statusOf(t, "ws://"+d.addr); st != 401 {
		t.Errorf("without credentials: %d, want 401", st)
	}
	if st := statusOf(t, "ws://desk:wrong@"+d.addr); st != 401 {
		t.Errorf("wrong password: %d, want 401", st)
	}
	echoThrough(t, "ws://desk:s3cret@"+d.addr)
	if d.waitLog(t, "s3cret") {
		t.Errorf("the password reached the log:\n%s", d.log())
	}
}

// TestWebsockifyClientCertificates runs the binary with websockify's
// --verify-client --cafile and ClientCertCNAuth: only a certificate from
// the CA with a listed CN gets through, and plain HTTP on the shared port
// is refused.
func TestWebsockifyClientCertificates(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA := testpki.NewCA(t, "server CA"), testpki.NewCA(t, "client CA")
	cert, key := serverCA.Server(t, "bridge", "127.0.0.1").Write(t, dir, "bridge")
	caFile := dir + "/clients.pem"
	testpki.WriteFile(t, caFile, clientCA.PEM)
	target := interopTarget(t, "tcp", "127.0.0.1:0")
	d := startDaemon(t, "--cert", cert, "--key", key, "--verify-client", "--cafile", caFile,
		"--auth-plugin", "ClientCertCNAuth", "--auth-source", "ops admin", "127.0.0.1:0", target)
	status := func(certs ...tls.Certificate) int {
		t.Helper()
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: serverCA.Pool(), Certificates: certs}}}
		c, resp, err := websocket.Dial(t.Context(), "wss://"+d.addr, &websocket.DialOptions{HTTPClient: hc})
		switch {
		case err == nil:
			c.CloseNow()
			return 101
		case resp != nil:
			return resp.StatusCode
		}
		return 0 // the TLS handshake failed
	}
	for _, tt := range []struct {
		name  string
		certs []tls.Certificate
		want  int
	}{
		{"listed CN", []tls.Certificate{clientCA.Client(t, "ops").TLS(t)}, 101},
		{"unlisted CN", []tls.Certificate{clientCA.Client(t, "dev").TLS(t)}, 403},
		{"other CA", []tls.Certificate{testpki.NewCA(t, "rogue").Client(t, "ops").TLS(t)}, 0},
		{"no certificate", nil, 0},
	} {
		if got := status(tt.certs...); got != tt.want {
			t.Errorf("%s: %d, want %d (0: handshake refused)", tt.name, got, tt.want)
		}
	}
	if st := statusOf(t, "ws://"+d.addr); st != 403 {
		t.Errorf("plain upgrade on a --verify-client port: %d, want 403", st)
	}
}

func TestWebsockifyExpectOrigin(t *testing.T) {
	target := interopTarget(t, "tcp", "127.0.0.1:0")
	d := startDaemon(t, "--auth-plugin", "ExpectOrigin", "--auth-source", "https://app.example http://kiosk.example:8080", "127.0.0.1:0", target)
	for origin, want := range map[string]int{
		"https://app.example":       101,
		"http://kiosk.example:8080": 101,
		"https://evil.example":      403,
		"":                          403, // ExpectOrigin refuses a request without Origin
	} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c, resp, err := websocket.Dial(t.Context(), "ws://"+d.addr, &websocket.DialOptions{HTTPHeader: h})
		got := 101
		if err != nil {
			got = 0
			if resp != nil {
				got = resp.StatusCode
			}
		} else {
			c.CloseNow()
		}
		if got != want {
			t.Errorf("Origin %q: %d, want %d", origin, got, want)
		}
	}
}
