package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/bridge"
)

const connectUsage = `usage: wsbridge connect [flags] ws[s]://HOST[:PORT]/PATH
       wsbridge connect -listen [HOST:]PORT [flags] ws[s]://HOST[:PORT]/PATH

The client half of a bridge. Without -listen, standard input goes to a
WebSocket and what comes back goes to standard output, which makes it an
OpenSSH ProxyCommand:

  ssh -o ProxyCommand='wsbridge connect -token-file ~/.vnc-token wss://gw.example/ssh' host

With -listen, every local TCP connection gets a WebSocket of its own:

  wsbridge connect -listen 127.0.0.1:2222 wss://gw.example/ssh
  scp -P 2222 file localhost:

It speaks to wsbridge and to websockify. A bare PORT listens on 127.0.0.1.
Tokens and passwords are never printed.

Exit status (without -listen):
  0    the session closed with 1000 (the target closed, or input ended)
  1    the bridge was not reachable (network, TLS), or a local error
  2    bad usage
  3    the bridge refused the handshake (its HTTP status and reason are printed)
  4    closed with 1001, 1012 or 1013: the bridge shutting down, an idle or
       lifetime limit, a removed target, a restart
  5    closed with 1011 or 1014: the target failed
  6    closed with another code (1002 protocol, 1003, 1007 base64, 1008 policy,
       1009 too big, ...)
  7    the connection was lost without a close frame
  130  interrupted (SIGINT, SIGTERM, SIGHUP): the session closed with 1001
With -listen, 0 after SIGINT or SIGTERM, 1 if the listener fails.

`

// connectFlags are connect's flags, after checking.
type connectFlags struct {
	url     string
	listen  string
	dial    *bridge.DialOptions
	timeout time.Duration
}

func cmdConnect(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cf, err := parseConnect(args, stderr)
	if err != nil {
		return err
	}
	// ssh ends its ProxyCommand with SIGHUP: close the session with 1001
	// rather than leave the bridge to find a dead connection.
	hup, stopHup := hangups()
	defer stopHup()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-hup:
			cancel()
		case <-ctx.Done():
		}
	}()
	if cf.listen != "" {
		return connectListen(ctx, cf, stderr)
	}
	c, err := dialBridge(ctx, cf)
	if err != nil {
		return connectExit(err)
	}
	// Standard input cannot be interrupted: hide its Close so that Relay
	// does not wait for a Read that ends only with the process.
	return connectExit(c.Relay(ctx, struct{ io.Reader }{stdin}, stdout))
}

func parseConnect(args []string, stderr io.Writer) (*connectFlags, error) {
	fs := newFlagSet("connect", connectUsage, stderr)
	listen := fs.String("listen", "", "accept local TCP connections on `[HOST:]PORT`, one WebSocket each")
	token := fs.String("token", "", "websockify `token`, sent as ?token= (visible in ps: prefer -token-file)")
	tokenFile := fs.String("token-file", "", "read the token from `file`")
	user := fs.String("user", "", "Basic auth `user` (with -password-file)")
	passwordFile := fs.String("password-file", "", "read the Basic auth password from `file`")
	bearerFile := fs.String("bearer-file", "", "read a bearer token for the Authorization header from `file`")
	proto := fs.String("subprotocol", "binary", "`binary`, base64 (websockify 0.8 framing) or none")
	ca := fs.String("ca", "", "PEM `file` of the authorities that sign the bridge's certificate (default: the system's)")
	cert := fs.String("cert", "", "client certificate PEM `file`, for bridges that ask for one (with -key)")
	key := fs.String("key", "", "client key PEM `file`")
	origin := fs.String("origin", "", "Origin header to send; default the bridge URL's own origin (http[s]://HOST[:PORT]), which wsbridge's same-host check admits; \"none\" sends none")
	eofWait := fs.Duration("eof-wait", 2*time.Second, "after the local input ends, pass the bridge's bytes on for this `duration` before closing; 0 closes at once, -1s waits for the bridge")
	timeout := fs.Duration("timeout", 10*time.Second, "handshake `timeout`, connecting included")
	// Flags may come before or after the URL.
	var rest []string
	for a := args; ; {
		if err := parseFlags(fs, a); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		a = fs.Args()[1:]
	}
	if len(rest) != 1 {
		return nil, usagef("connect takes one ws:// or wss:// URL")
	}
	u, err := url.Parse(rest[0])
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return nil, usagef("connect: %q is not a ws:// or wss:// URL", bridge.Redact(safeURL(rest[0])))
	}
	cf := &connectFlags{listen: *listen, timeout: *timeout, dial: &bridge.DialOptions{Header: http.Header{}, EOFWait: *eofWait}}
	switch *proto {
	case "binary":
	case "base64":
		cf.dial.Mode = bridge.Base64
	case "none":
		cf.dial.NoSubprotocol = true
	default:
		return nil, usagef("connect: -subprotocol %q: use binary, base64 or none", *proto)
	}
	if *token != "" && *tokenFile != "" {
		return nil, usagef("connect: -token and -token-file are one or the other")
	}
	if *tokenFile != "" {
		if *token, err = readSecret(*tokenFile); err != nil {
			return nil, err
		}
	}
	if *token != "" {
		q := u.Query()
		q.Set("token", *token)
		u.RawQuery = q.Encode()
	}
	cf.url = u.String()
	switch {
	case *bearerFile != "" && (*user != "" || *passwordFile != ""):
		return nil, usagef("connect: -bearer-file and -user are one or the other")
	case (*user == "") != (*passwordFile == ""):
		return nil, usagef("connect: -user and -password-file go together")
	case *user != "":
		pw, err := readSecret(*passwordFile)
		if err != nil {
			return nil, err
		}
		cf.dial.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(*user+":"+pw)))
	case *bearerFile != "":
		tok, err := readSecret(*bearerFile)
		if err != nil {
			return nil, err
		}
		cf.dial.Header.Set("Authorization", "Bearer "+tok)
	}
	switch *origin {
	case "":
		scheme := "http"
		if u.Scheme == "wss" {
			scheme = "https"
		}
		cf.dial.Header.Set("Origin", scheme+"://"+strings.ToLower(u.Host))
	case "none":
	default:
		cf.dial.Header.Set("Origin", *origin)
	}
	if u.Scheme == "wss" {
		if cf.dial.TLS, err = clientTLS(*ca, *cert, *key); err != nil {
			return nil, err
		}
	} else if *ca != "" || *cert != "" {
		return nil, usagef("connect: -ca and -cert are for wss:// URLs")
	}
	if cf.listen != "" && !strings.Contains(cf.listen, ":") {
		cf.listen = "127.0.0.1:" + cf.listen
	}
	return cf, nil
}

// safeURL parses what it can of a URL the user gave, for a message.
func safeURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		return &url.URL{Opaque: "(unparsable)"}
	}
	return u
}

// readSecret reads a one-line secret; the trailing newline is not part of it.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

func clientTLS(ca, cert, key string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", ca)
		}
	}
	if (cert == "") != (key == "") {
		return nil, usagef("connect: -cert and -key go together")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func dialBridge(ctx context.Context, cf *connectFlags) (*bridge.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	return bridge.Dial(ctx, cf.url, cf.dial)
}

// exitError ends the process with its own status after printing err.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// connectExit maps how a session ended to connect's exit status (see
// connectUsage).
func connectExit(err error) error {
	var he *bridge.HandshakeError
	var ce websocket.CloseError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		return &exitError{130, errors.New("interrupted: closed the session with 1001")}
	case errors.As(err, &he):
		return &exitError{3, err}
	case errors.Is(err, bridge.ErrLost):
		return &exitError{7, err}
	case errors.As(err, &ce):
		code := 6
		switch ce.Code {
		case websocket.StatusGoingAway, websocket.StatusServiceRestart, websocket.StatusTryAgainLater:
			code = 4
		case websocket.StatusInternalError, websocket.StatusBadGateway:
			code = 5
		}
		msg := fmt.Sprintf("the bridge closed the session: %d", int(ce.Code))
		if ce.Reason != "" {
			msg += " " + ce.Reason
		}
		return &exitError{code, errors.New(msg)}
	}
	return err
}

// connectListen accepts local connections until ctx ends, each bridged
// over a WebSocket of its own. Sessions still open at the end close with
// 1001.
func connectListen(ctx context.Context, cf *connectFlags, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ln, err := net.Listen("tcp", cf.listen)
	if err != nil {
		return err
	}
	u, _ := url.Parse(cf.url)
	log.Info("listening", "addr", ln.Addr().String(), "bridge", bridge.Redact(u))
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			connectOne(ctx, cf, conn, log.With("remote", conn.RemoteAddr().String()))
		}()
	}
}

// connectOne bridges one local connection and logs how it ended.
func connectOne(ctx context.Context, cf *connectFlags, conn net.Conn, log *slog.Logger) {
	start := time.Now()
	c, err := dialBridge(ctx, cf)
	if err != nil {
		conn.Close()
		log.Warn("bridge refused or unreachable", "err", err)
		return
	}
	err = c.Relay(ctx, conn, conn)
	attrs := []any{"duration", time.Since(start).Round(time.Millisecond)}
	var ce websocket.CloseError
	switch {
	case err == nil:
		log.Info("session closed", attrs...)
	case errors.As(err, &ce):
		log.Info("session closed", append(attrs, "close_code", int(ce.Code), "reason", ce.Reason)...)
	case errors.Is(err, context.Canceled):
		log.Info("session closed", append(attrs, "close_code", int(websocket.StatusGoingAway), "reason", "Client going away")...)
	default:
		log.Warn("session ended", append(attrs, "err", err)...)
	}
}
