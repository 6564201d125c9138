package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/targets"
)

// admin serves /metrics, /healthz, /readyz and /selfcheck on the admin
// listener: never on a bridge listener, so that clients cannot read them.
type admin struct {
	d     *daemon
	ready atomic.Bool // every listener is serving
}

func (a *admin) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.d.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("GET /selfcheck", func(w http.ResponseWriter, r *http.Request) {
		rtt, err := a.d.selfCheck(r.Context())
		if err != nil {
			http.Error(w, "self-check: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "self-check: ok, round trip %s\n", rtt.Round(time.Microsecond))
	})
	return mux
}

// readyz is 200 when wsbridge should get traffic: every listener serves, a
// configuration is loaded and it is not draining, and the configured
// checks (ready targets, self-check) pass. Each check is one line.
func (a *admin) readyz(w http.ResponseWriter, r *http.Request) {
	var out strings.Builder
	ok := true
	line := func(name string, err error, took time.Duration) {
		if err != nil {
			ok = false
			fmt.Fprintf(&out, "%s: failed: %v\n", name, err)
			return
		}
		if took > 0 {
			fmt.Fprintf(&out, "%s: ok (%s)\n", name, took.Round(time.Microsecond))
		} else {
			fmt.Fprintf(&out, "%s: ok\n", name)
		}
	}
	var lerr error
	if !a.ready.Load() {
		lerr = errors.New("not serving yet")
	}
	line("listeners", lerr, 0)
	st := a.d.current()
	var derr error
	if a.d.srv.Stats().Draining {
		derr = errors.New("shutting down")
	}
	line("draining", derr, 0)
	line("config", nil, 0)
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	for _, name := range st.admin.readyTargets {
		start := time.Now()
		err := dialCheck(ctx, st, name)
		line("target "+name, err, time.Since(start))
	}
	if st.admin.selfCheck {
		rtt, err := a.d.selfCheck(ctx)
		line("self_check", err, rtt)
	}
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	io.WriteString(w, out.String())
}

// dialCheck connects to the configured target name and hangs up.
func dialCheck(ctx context.Context, st *settings, name string) error {
	for _, rt := range st.routes {
		if rt.Target.Name == name {
			c, err := rt.Target.Dial(ctx, 2*time.Second)
			if err != nil {
				return err
			}
			return c.Close()
		}
	}
	return fmt.Errorf("no target %q", name)
}

// selfChecker owns the built-in echo that self-checks are bridged to.
type selfChecker struct {
	key  string
	echo net.Listener
	url  string
	http *http.Client
}

// newSelfChecker starts the echo and prepares a client for the first
// listener that takes connections without a PROXY header.
func newSelfChecker(lns []listener, tlsOn bool) (*selfChecker, *bridge.SelfCheck, error) {
	var target *listener
	for i := range lns {
		if lns[i].spec.proxy != "require" {
			target = &lns[i]
			break
		}
	}
	if target == nil {
		return nil, nil, errors.New("admin.self_check: every listener requires a PROXY header")
	}
	key := make([]byte, 32)
	rand.Read(key)
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	go echoLoop(echo)
	sc := &selfChecker{key: hex.EncodeToString(key), echo: echo}
	scheme := "ws"
	tr := &http.Transport{}
	if tlsOn {
		scheme = "wss"
		// It is our own listener, reached over loopback or a socket
		// file; the point is the round trip, not the certificate.
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	a := target.ln.Addr()
	host := a.String()
	if a.Network() == "unix" {
		host = "self-check"
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", a.String())
		}
	} else if ta, ok := a.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		loop := "127.0.0.1"
		if ta.IP.To4() == nil {
			loop = "::1"
		}
		host = net.JoinHostPort(loop, fmt.Sprint(ta.Port))
	}
	sc.url = scheme + "://" + host + "/"
	sc.http = &http.Client{Transport: tr}
	return sc, &bridge.SelfCheck{Key: sc.key, Target: targets.Target{Name: "self-check", Network: "tcp", Address: echo.Addr().String()}}, nil
}

// run opens a WebSocket through the listener to the echo and times one
// round trip.
func (sc *selfChecker) run(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	h := http.Header{}
	h.Set(bridge.SelfCheckHeader, sc.key)
	ws, _, err := websocket.Dial(ctx, sc.url, &websocket.DialOptions{HTTPClient: sc.http, HTTPHeader: h, Subprotocols: []string{"binary"}})
	if err != nil {
		return 0, err
	}
	defer ws.CloseNow()
	msg := make([]byte, 16)
	rand.Read(msg)
	start := time.Now()
	if err := ws.Write(ctx, websocket.MessageBinary, msg); err != nil {
		return 0, err
	}
	var got []byte
	for len(got) < len(msg) {
		_, p, err := ws.Read(ctx)
		if err != nil {
			return 0, err
		}
		got = append(got, p...)
	}
	rtt := time.Since(start)
	if !bytes.Equal(got, msg) {
		return 0, errors.New("the echo came back different")
	}
	ws.Close(websocket.StatusNormalClosure, "")
	return rtt, nil
}

func (sc *selfChecker) Close() { sc.echo.Close() }

// echoLoop answers every connection on ln with its own bytes, until ln
// closes.
func echoLoop(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}
