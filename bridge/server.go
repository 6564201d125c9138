package bridge

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbridge/wsbridge/ratelimit"
	"github.com/wsbridge/wsbridge/targets"
)

// Options tune a Server. The zero value of every field means its default.
type Options struct {
	// Logger receives one line per finished session and one per refused
	// handshake. Default: slog.Default().
	Logger *slog.Logger

	// HeaderTimeout is how long Serve waits for a request's headers.
	// Default 10s.
	HeaderTimeout time.Duration
	// MaxHeaderBytes caps the size of a request's headers in Serve.
	// Default 16 KiB.
	MaxHeaderBytes int

	// DialTimeout bounds connecting to a target. Default 10s.
	DialTimeout time.Duration
	// WriteTimeout bounds every write to the target and to the client
	// (each write on its own, pings included). Default 30s; negative
	// disables it.
	WriteTimeout time.Duration
	// PingInterval is the time between WebSocket pings. Default 25s;
	// negative disables pings.
	PingInterval time.Duration
	// PongTimeout is how long a ping may wait for its pong before the
	// session closes with 1001. Pongs are only read between client
	// messages, so a late pong is forgiven (and the next ping decides) when
	// the client reader wrote to the target during the wait, or is blocked
	// writing to it. Default 15s.
	PongTimeout time.Duration
	// IdleTimeout closes a session with 1008 after this long without a byte
	// in either direction. Zero disables it.
	IdleTimeout time.Duration
	// MaxLifetime closes a session with 1008 after this long. Zero disables
	// it.
	MaxLifetime time.Duration
	// Linger bounds the end of a session: how long the other direction may
	// still deliver bytes and the close handshake may take once one side
	// has ended. Default 5s.
	Linger time.Duration

	// MessageLimit is the largest message a client may send, in bytes of
	// payload (for base64 sessions, of decoded payload); a larger one closes
	// the session with 1009, after the bytes read up to the limit were
	// relayed. Default 64 KiB, the size browsers and websockify send (the
	// library's own default is 32 KiB).
	MessageLimit int64
	// ReadSize is the largest read from a target while it sends little, and
	// the largest message to the client, in bytes before any base64. While
	// the target sends fast, reads take up to 512 KiB (or ReadSize, when
	// larger), sent as messages of ReadSize in one system call. Default
	// 64 KiB.
	ReadSize int

	// StrictText closes a binary session with 1003 when the client sends a
	// text message, as websockify 0.9 and later do. By default the text
	// message's bytes are relayed.
	StrictText bool
	// DialAfterUpgrade answers 101 before dialling the target and closes
	// with 1011 if the dial fails, which is websockify's order. By default
	// the target is dialled first, so a dead target is an HTTP 502 that the
	// operator and the client can see.
	DialAfterUpgrade bool

	// TLS, when set, makes Serve speak TLS (wss:// and https://). With
	// AllowPlain, plain HTTP is served on the same port too, told apart by
	// the first byte as websockify does; without it, a plain request gets a
	// 400 that says the port speaks TLS. The TLS handshake and the request
	// headers each get HeaderTimeout.
	TLS        *tls.Config
	AllowPlain bool
	// RequireClientCert refuses, with 403, every request that did not come
	// over TLS with a verified client certificate. It closes the plain-HTTP
	// side door of a listener with AllowPlain and client certificates.
	RequireClientCert bool

	// Hosts, when not empty, lists the Host header names (without port)
	// served; any other is a 403. Entries are lower-case names, IP
	// addresses ("[::1]" for IPv6) or "*.example.com". This defends
	// against DNS rebinding, where a page on an attacker's name that
	// resolves to this bridge sends that name as Host.
	Hosts []string
	// Origins are the browser origins allowed besides the one naming this
	// host: "scheme://host[:port]", "scheme://*.domain[:port]", or "null"
	// for the opaque origin. Browsers send origins in lower case, without
	// path or default port; anything else is refused as malformed.
	Origins []string
	// RefuseNoOrigin refuses, with 403, upgrades without an Origin header,
	// that is from programs rather than browsers. The library's default
	// admits them; wsbridge's configuration refuses them unless
	// http.allow_no_origin is set.
	RefuseNoOrigin bool

	// Auth authenticates requests; nil accepts no credentials (a client
	// certificate still makes an identity for targets that list one).
	Auth *Auth

	// TargetTLS, when set, is used to dial every target whose Target.TLS
	// is nil over TLS (websockify's --ssl-target). ServerName defaults to
	// the host of the target's address.
	TargetTLS *tls.Config

	// Token says where requests carry their token. Default: the "token"
	// query parameter.
	Token TokenFrom
	// FailedLookups is how many failed token lookups one client address
	// (an IPv6 /64) may make per FailedLookupWindow; the failure that
	// exhausts it gets the address 429 for FailedLookupBan, without any
	// token source being asked. A target that is down counts as a failure
	// when a token chose it, since the client sees the same 404. Defaults
	// 5, 1m and 1m; a negative FailedLookups turns the budget off.
	FailedLookups      int
	FailedLookupWindow time.Duration
	FailedLookupBan    time.Duration

	// MaxSessions caps the sessions, live or in their handshake; past it a
	// handshake gets 503. Default, and never more than, SessionCeiling():
	// (open-files limit - 64) / 2.
	MaxSessions int
	// PerIPSessions caps the sessions of one client address (an IPv6
	// /64); past it a handshake gets 429. Default 16; negative is no cap.
	PerIPSessions int
	// PerIPRate and PerIPBurst limit the handshakes of one client address
	// per second; past them a handshake gets 429 with Retry-After.
	// Defaults 10 and 20; a negative PerIPRate is no limit.
	PerIPRate  float64
	PerIPBurst int
	// PerTargetSessions caps the sessions of each target (by configured
	// name, or by address for targets from token sources); 503 past it.
	// targets.Settings.MaxSessions overrides it. Zero is no cap.
	PerTargetSessions int
	// PerTokenSessions caps the sessions that use one token; 429 past it.
	// Zero is no cap.
	PerTokenSessions int

	// SessionBandwidthIn and SessionBandwidthOut limit each session, in
	// bytes per second, client to target and target to client.
	// TotalBandwidthIn and TotalBandwidthOut limit all sessions together;
	// targets.Settings can limit all sessions of a target. Zero is
	// unlimited. Waiting for bandwidth holds the reader back, so a
	// limited session queues nothing.
	SessionBandwidthIn, SessionBandwidthOut int64
	TotalBandwidthIn, TotalBandwidthOut     int64

	// Files answers requests that are not WebSocket upgrades, for example
	// a StaticFiles web root. Nil answers them with 426 Upgrade Required.
	Files http.Handler

	// TrustedProxies are the networks of HTTP proxies whose
	// X-Forwarded-For or Forwarded header names the client: for a request
	// from one of them, the client address that limits count and logs
	// show is the last address in those headers that is not itself a
	// trusted proxy. Empty trusts no header. (PROXY protocol headers are
	// the listener's business: see ProxyListener.)
	TrustedProxies []netip.Prefix

	// Observer receives the events of metrics; nil receives nothing. It
	// keeps its first value across Reload.
	Observer Observer
	// SelfCheck, when set, admits the daemon's own end-to-end check.
	SelfCheck *SelfCheck
	// Recorder records the sessions of targets whose Settings.Record is
	// set; nil records nothing.
	Recorder Recorder
	// Record, "novnc" or "raw", records every session in that format,
	// including those of targets without Settings (from token sources);
	// a target's own Settings.Record wins.
	Record string
}

const (
	defaultHeaderTimeout = 10 * time.Second
	defaultMaxHeader     = 16 << 10
	defaultDialTimeout   = 10 * time.Second
	defaultWriteTimeout  = 30 * time.Second
	defaultPingInterval  = 25 * time.Second
	defaultPongTimeout   = 15 * time.Second
	defaultLinger        = 5 * time.Second
	defaultMessageLimit  = 64 << 10
	defaultReadSize      = 64 << 10
	minReadSize          = 512
	// bulkReadSize is the size of a read from a target that is sending
	// fast (the last read filled its buffer): fewer, larger system calls
	// per byte, its messages gathered into one write to the client. The
	// buffer is the pool's only while bytes are on their way.
	bulkReadSize         = 512 << 10
	defaultFailedLookups = 5
	defaultPerIPSessions = 16
	defaultPerIPRate     = 10
	defaultPerIPBurst    = 20
	defaultFailWindow    = time.Minute
	defaultFailBan       = time.Minute
	// unavailableRetry is the Retry-After of a 503 while a token source is
	// down.
	unavailableRetry = 5 * time.Second
)

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	c.Origins = slices.Clone(c.Origins)
	c.Hosts = slices.Clone(c.Hosts)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	setDefault(&c.HeaderTimeout, defaultHeaderTimeout)
	setDefault(&c.MaxHeaderBytes, defaultMaxHeader)
	setDefault(&c.DialTimeout, defaultDialTimeout)
	setDefault(&c.WriteTimeout, defaultWriteTimeout)
	setDefault(&c.PingInterval, defaultPingInterval)
	setDefault(&c.PongTimeout, defaultPongTimeout)
	setDefault(&c.Linger, defaultLinger)
	setDefault(&c.MessageLimit, defaultMessageLimit)
	setDefault(&c.ReadSize, defaultReadSize)
	c.ReadSize = max(c.ReadSize, minReadSize)
	setDefault(&c.FailedLookups, defaultFailedLookups)
	setDefault(&c.FailedLookupWindow, defaultFailWindow)
	setDefault(&c.FailedLookupBan, defaultFailBan)
	return c
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// Server bridges WebSocket clients to the targets its Resolver picks. Its
// methods may be called from several goroutines.
type Server struct {
	cfg      atomic.Pointer[config]
	log      *slog.Logger
	obs      Observer
	bufs     sync.Pool // *[]byte of bufSize, the first ReadSize
	bulkBufs sync.Pool // *[]byte of bulkSize
	bufSize  int
	bulkSize int // bulkReadSize, or bufSize when larger
	limits   atomic.Pointer[Limits]
	clients  atomic.Pointer[ratelimit.Clients]      // nil when off
	slots    ratelimit.Counter                      // per target and per token
	inflight atomic.Int64                           // sessions live or in their handshake
	totalBW  [2]atomic.Pointer[ratelimit.Bandwidth] // in, out

	mu       sync.Mutex
	draining bool
	sessions map[*session]struct{}
	targetBW map[string]*targetBW
	wg       sync.WaitGroup // one per tracked session
	servers  []*http.Server
	doneIn   int64 // bytes of the sessions that have ended
	doneOut  int64

	total atomic.Uint64
}

// New returns a Server that dials what r resolves. opts may be nil.
func New(r targets.Resolver, opts *Options) *Server {
	o := opts.withDefaults()
	s := &Server{
		log:      o.Logger,
		obs:      o.Observer,
		sessions: make(map[*session]struct{}),
		targetBW: make(map[string]*targetBW),
	}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	s.cfg.Store(newConfig(r, o, nil, s.log))
	l := o.limits()
	l.withDefaults()
	s.limits.Store(&l)
	s.clients.Store(ratelimit.NewClients(l.PerIPSessions, l.PerIPRate, l.PerIPBurst))
	s.totalBW[0].Store(ratelimit.NewBandwidth(l.TotalBandwidthIn))
	s.totalBW[1].Store(ratelimit.NewBandwidth(l.TotalBandwidthOut))
	s.bufSize = o.ReadSize
	s.bulkSize = max(bulkReadSize, s.bufSize)
	s.bufs.New = func() any {
		b := make([]byte, s.bufSize)
		return &b
	}
	s.bulkBufs.New = func() any {
		b := make([]byte, s.bulkSize)
		return &b
	}
	return s
}

// Active returns the number of sessions past the upgrade.
func (s *Server) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Total returns the number of sessions that have been upgraded since the
// Server was made.
func (s *Server) Total() uint64 { return s.total.Load() }

type connKey struct{}

// Serve accepts connections on ln until Shutdown, with the header deadline
// and size cap of the Options, and with write deadlines toward clients. It
// returns http.ErrServerClosed after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	o := &s.cfg.Load().opts
	g := newGate(ln, o.TLS, o.AllowPlain, o.HeaderTimeout, s.log)
	defer g.wait()
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: o.HeaderTimeout,
		// net/http allows 4 KiB more than MaxHeaderBytes.
		MaxHeaderBytes: max(o.MaxHeaderBytes-4096, 1024),
		IdleTimeout:    2 * o.HeaderTimeout,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		g.Close()
		return http.ErrServerClosed
	}
	s.servers = append(s.servers, hs)
	s.mu.Unlock()
	return hs.Serve(g)
}

// ServeHTTP answers one request: a WebSocket upgrade becomes a session that
// lasts until either side ends it; anything else goes to Options.Files.
// Mounted in another http.Server, the Server cannot set write deadlines on
// client connections, and a client that stops reading is found by the
// ping deadline instead.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := s.cfg.Load()
	peer := r.RemoteAddr
	if len(c.opts.TrustedProxies) > 0 {
		// From here on the client's address is the one the trusted proxy
		// names: it is what limits count and logs show.
		r.RemoteAddr = forwardedFor(r, c.opts.TrustedProxies)
	}
	log := s.log.With("remote", r.RemoteAddr, "path", c.logPath(r))
	if r.RemoteAddr != peer {
		log = log.With("proxy", peer)
	}
	cc := connFrom(r)
	if cc != nil && cc.nextHeadBad() {
		w.Header().Set("Connection", "close")
		s.answer(w, log, refuse(http.StatusBadRequest, "request lines must end with CRLF"))
		return
	}
	if rf := c.checkHost(r); rf != nil && !c.opts.SelfCheck.matches(r) {
		log.Warn("host refused", "host", c.logHost(r))
		s.answer(w, log, rf.as("host"))
		return
	}
	if !isUpgrade(r) {
		if c.opts.Files == nil {
			w.Header().Set("Upgrade", "websocket")
			http.Error(w, "this is a WebSocket endpoint", http.StatusUpgradeRequired)
			return
		}
		if rf := s.webDoor(c, r, cc, log); rf != nil {
			s.answer(w, log, rf)
			return
		}
		c.opts.Files.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	tk := &ticket{}
	sess, rf := s.open(c, w, r, cc, tk, log)
	if rf != nil {
		s.release(tk)
		s.answer(w, log, rf)
		return
	}
	if sess == nil {
		s.release(tk)
		return // Accept failed after the dial, and has answered and logged
	}
	sess.start = start
	// The session runs on its pumps' goroutines and the handler returns:
	// net/http is done with a hijacked connection, so its goroutine (the
	// deepest stack here) and the request end now instead of idling for
	// the session's life.
	sess.begin(tk)
}

// ended logs a session that is over and lets it go.
func (s *Server) ended(sess *session, end ending) {
	s.release(sess.tk)
	s.obs.Ended(sess.label, end.by, int(end.code))
	if sess.rec != nil {
		sess.rec.Close()
	}
	// Log before untracking, so that Shutdown, which waits for tracked
	// sessions, never returns before their lines are written.
	defer s.untrack(sess)
	attrs := []any{
		"bytes_in", sess.bytesIn.Load(),
		"bytes_out", sess.bytesOut.Load(),
		"duration", time.Since(sess.start).Round(time.Millisecond),
		"close_code", int(end.code),
		"close_reason", end.reason,
		"ended_by", end.by,
	}
	if end.err != nil {
		attrs = append(attrs, "err", end.err.Error())
	}
	sess.log.Info("session", attrs...)
}

// answer logs a refusal and sends it.
func (s *Server) answer(w http.ResponseWriter, log *slog.Logger, rf *refusal) {
	kind := refusalKind(rf)
	log.Warn("refused", "status", rf.status, "reason", rf.reason, "kind", kind)
	s.obs.Refused(kind)
	h := w.Header()
	if rf.retryAfter > 0 {
		// Rounded up: a client that waits less would be refused again.
		h.Set("Retry-After", strconv.Itoa(int((rf.retryAfter+time.Second-1)/time.Second)))
	}
	for i := 0; i+1 < len(rf.headers); i += 2 {
		h.Add(rf.headers[i], rf.headers[i+1])
	}
	http.Error(w, rf.reason, rf.status)
}

// webDoor applies the checks of the door to a web-root request.
func (s *Server) webDoor(c *config, r *http.Request, cc *clientConn, log *slog.Logger) *refusal {
	if rf := c.banned(remoteAddr(r), time.Now()); rf != nil {
		return rf
	}
	_, rf := s.door(c, r, requestTLS(r, cc), true, log)
	return rf.as("auth")
}

// remoteAddr is the client's address, or the zero Addr (which no limit
// tracks) when RemoteAddr is not an IP address and port.
func remoteAddr(r *http.Request) netip.Addr {
	ap, _ := netip.ParseAddrPort(r.RemoteAddr)
	return ap.Addr()
}

// banned refuses an address that spent its failed lookups and logins.
func (c *config) banned(a netip.Addr, now time.Time) *refusal {
	left, banned := c.failures.Banned(a, now)
	if !banned {
		return nil
	}
	rf := refuse(http.StatusTooManyRequests, "too many failed lookups or logins").as("banned")
	rf.retryAfter = left
	return rf
}

// logHost is the Host header as logs show it: with host tokens, the Host is
// the token and is left out.
func (c *config) logHost(r *http.Request) string {
	if c.opts.Token.Place == "host" {
		return "(token)"
	}
	return r.Host
}

// spendFailure counts a failed token lookup or login against the client's
// address, and logs to log when that starts a ban.
func (s *Server) spendFailure(c *config, log *slog.Logger, a netip.Addr) {
	if c.failures.Fail(a, time.Now()) {
		log.Warn("failed lookups or logins: refusing this address", "for", c.opts.FailedLookupBan)
	}
}

// connFrom returns the connection Serve accepted the request on, or nil
// when the Server is mounted in another http.Server.
func connFrom(r *http.Request) *clientConn {
	cc, _ := r.Context().Value(connKey{}).(*clientConn)
	return cc
}

// requestTLS returns the TLS state the request came with, or nil.
func requestTLS(r *http.Request, cc *clientConn) *tls.ConnectionState {
	if r.TLS != nil {
		return r.TLS
	}
	if cc != nil {
		return cc.tlsState()
	}
	return nil
}

// logPath is the request path as logs show it: with tokens read from the
// path, the token is left out (the log line carries its hash).
func (c *config) logPath(r *http.Request) string {
	if c.opts.Token.Place != "path" {
		return r.URL.Path
	}
	prefix := c.opts.Token.PathPrefix
	if prefix == "" {
		prefix = "/"
	}
	if strings.HasPrefix(r.URL.Path, prefix) && len(r.URL.Path) > len(prefix) {
		return prefix + "(token)"
	}
	return r.URL.Path
}

// open runs every check, resolves and dials the target, and upgrades. It
// returns a refusal for the caller to answer, or a session, or neither when
// Accept answered the client itself.
func (s *Server) open(c *config, w http.ResponseWriter, r *http.Request, cc *clientConn, tk *ticket, log *slog.Logger) (*session, *refusal) {
	if s.isDraining() {
		return nil, refuse(http.StatusServiceUnavailable, "server is shutting down").as("draining")
	}
	// Admission comes first: a banned or greedy address costs no more
	// work.
	ap, _ := netip.ParseAddrPort(r.RemoteAddr)
	remote := ap.Addr()
	now := time.Now()
	if rf := c.banned(remote, now); rf != nil {
		return nil, rf
	}
	tk.addr = remote
	if rf := s.admit(tk, now); rf != nil {
		return nil, rf
	}
	if rf := checkUpgrade(r); rf != nil {
		return nil, rf.as("bad_handshake")
	}
	proto, mode, err := NegotiateSubprotocol(r.Header.Values("Sec-WebSocket-Protocol"))
	if err != nil {
		return nil, refuse(http.StatusBadRequest, err.Error()).as("subprotocol")
	}
	var (
		id    Identity
		token string
		t     targets.Target
		rf    *refusal
	)
	if sc := c.opts.SelfCheck; sc.matches(r) {
		t = sc.Target
	} else {
		id, token, t, rf = s.pick(c, r, cc, ap, &log)
		if rf != nil {
			return nil, rf
		}
	}
	label := MetricLabel(t)
	log = log.With("target", targetLabel(t), "subprotocol", proto)
	if t.Settings != nil && len(t.Settings.Identities) > 0 {
		if rf := c.admitIdentity(id, true, t.Settings.Identities); rf != nil {
			return nil, rf.as("identity")
		}
	}
	if rf := s.admitTarget(tk, t, token); rf != nil {
		return nil, rf
	}
	set := sessionSettings(&c.opts, t.Settings)

	var tc net.Conn
	if !c.opts.DialAfterUpgrade {
		if tc, err = s.dial(c, r.Context(), t, set, r, label); err != nil {
			log.Warn("target unreachable", "err", err)
			// With a token, a dead target answers like an unknown token,
			// so that tokens cannot be probed; so does a target outside
			// the allowlist.
			if token != "" || errors.Is(err, targets.ErrNotAllowed) {
				return nil, s.notFound(c, log, ap.Addr(), token).as("target_unreachable")
			}
			return nil, refuse(http.StatusBadGateway, "target unreachable")
		}
	}

	sess := &session{srv: s, cfg: c, target: t, label: label, mode: mode, tc: tc, log: log, ping: set.PingInterval, pingIdx: -1, ended: make(chan struct{}), outEnded: make(chan struct{})}
	tin, tout := s.targetBandwidth(t)
	lim := s.limits.Load()
	sess.in = newDirection("in", c.opts.ReadSize, ratelimit.NewBandwidth(lim.SessionBandwidthIn), tin, s.totalBW[0].Load())
	sess.out = newDirection("out", max(bulkReadSize, c.opts.ReadSize), ratelimit.NewBandwidth(lim.SessionBandwidthOut), tout, s.totalBW[1].Load())
	if !s.track(sess) {
		closeConn(tc)
		return nil, refuse(http.StatusServiceUnavailable, "server is shutting down").as("draining")
	}
	if cc != nil {
		// From here the connection carries frames, not request heads.
		cc.upgraded.Store(true)
	}
	hj := &hijacker{ResponseWriter: w, timeout: c.opts.WriteTimeout}
	ws, err := websocket.Accept(hj, r, &websocket.AcceptOptions{
		Subprotocols: offer(proto),
		// checkOrigin applied a stricter rule than the library's, which
		// cannot be told to allow "null" or to compare schemes.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
		OnPongReceived:     sess.onPong,
	})
	if err != nil {
		s.untrack(sess)
		closeConn(tc)
		log.Warn("upgrade failed", "err", err)
		return nil, nil
	}
	limit := set.MessageLimit
	if mode == Base64 {
		// The limit counts the bytes a message carries, whatever the
		// framing: base64 takes four characters for every three.
		limit = (limit + 2) / 3 * 4
	}
	ws.SetReadLimit(limit)
	sess.ws, sess.limit = ws, limit
	sess.fw, sess.cr = hj.fw, hj.cr
	sess.cc, _ = r.Context().Value(connKey{}).(net.Conn)
	s.total.Add(1)
	if set.Record != "" && c.opts.Recorder != nil {
		sess.rec = c.opts.Recorder.Record(RecordingInfo{Target: t, Format: set.Record, Subprotocol: proto, Mode: mode, Start: time.Now()})
	}

	if tc == nil {
		// websockify's order: the client has its 101 already, so a failed
		// dial can only be told with a close code.
		if sess.tc, err = s.dial(c, context.Background(), t, set, r, label); err != nil {
			log.Warn("target unreachable", "err", err)
			sess.failed = &ending{code: websocket.StatusInternalError, reason: "Failed to connect to downstream server", by: "target"}
		}
	}
	return sess, nil
}

// pick runs the checks of the door and resolves the target: Origin,
// authentication, the token and the resolver. It adds what it learns to
// *log.
func (s *Server) pick(c *config, r *http.Request, cc *clientConn, ap netip.AddrPort, logp **slog.Logger) (Identity, string, targets.Target, *refusal) {
	log := *logp
	defer func() { *logp = log }()
	remote := ap.Addr()
	if rf := c.checkOrigin(r); rf != nil {
		log.Warn("origin refused", "origin", r.Header.Get("Origin"), "host", c.logHost(r))
		return nil, "", targets.Target{}, rf.as("origin")
	}
	// Authentication comes before any token lookup: a stranger learns
	// nothing about tokens, and costs no lookups.
	id, rf := s.door(c, r, requestTLS(r, cc), false, log)
	if rf != nil {
		return nil, "", targets.Target{}, rf.as("auth")
	}
	if len(id) > 0 {
		log = log.With("identity", id[0])
	}
	token, err := ExtractToken(r, c.opts.Token)
	if err != nil {
		return nil, "", targets.Target{}, err.(*refusal).as("bad_token")
	}
	req := targets.Request{Path: r.URL.Path, Token: token, Host: r.Host, Remote: ap}
	if token != "" {
		log = log.With("token_hash", TokenHash(token))
	}
	t, err := c.resolver.Resolve(r.Context(), req)
	if err != nil {
		log.Warn("no target", "err", err)
		switch {
		case errors.Is(err, targets.ErrNotFound):
			return nil, "", targets.Target{}, s.notFound(c, log, remote, token)
		case errors.Is(err, targets.ErrUnavailable):
			rf := refuse(http.StatusServiceUnavailable, "token lookup unavailable").as("lookup_unavailable")
			rf.retryAfter = unavailableRetry
			return nil, "", targets.Target{}, rf
		}
		return nil, "", targets.Target{}, refuse(http.StatusBadGateway, "target lookup failed").as("lookup_failed")
	}
	return id, token, t, nil
}

// notFound answers like an unknown token and, when a token was presented,
// spends one of the client's failed lookups.
func (s *Server) notFound(c *config, log *slog.Logger, remote netip.Addr, token string) *refusal {
	if token != "" {
		s.spendFailure(c, log, remote)
	}
	return refuse(http.StatusNotFound, "not found")
}

// dial connects to t within the settings' timeout: a PROXY header first
// when the target wants one, then TLS when the target or the Options ask
// for it. It reports the dial to the Observer under label.
// r is the client's request, whose addresses a PROXY header names.
func (s *Server) dial(c *config, ctx context.Context, t targets.Target, set targets.Settings, r *http.Request, label string) (net.Conn, error) {
	start := time.Now()
	conn, err := s.dialTarget(c, ctx, t, set, r)
	s.obs.Dialled(label, time.Since(start), err)
	return conn, err
}

func (s *Server) dialTarget(c *config, ctx context.Context, t targets.Target, set targets.Settings, r *http.Request) (net.Conn, error) {
	cfg := t.TLS
	if cfg == nil {
		cfg = c.opts.TargetTLS
	}
	ctx, cancel := context.WithTimeout(ctx, set.DialTimeout)
	defer cancel()
	conn, err := t.Dial(ctx, set.DialTimeout)
	if err != nil {
		return nil, err
	}
	if set.ProxyProtocol != 0 {
		if err := writeProxyHeader(ctx, conn, set.ProxyProtocol, r); err != nil {
			conn.Close()
			return nil, err
		}
	}
	if cfg == nil {
		return conn, nil
	}
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		if t.Network == "tcp" {
			cfg.ServerName, _, _ = net.SplitHostPort(t.Address)
		}
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS toward target: %w", err)
	}
	return tc, nil
}

// sessionSettings applies a target's overrides to the server's settings.
func sessionSettings(o *Options, over *targets.Settings) targets.Settings {
	set := targets.Settings{DialTimeout: o.DialTimeout, PingInterval: o.PingInterval, MessageLimit: o.MessageLimit, Record: o.Record}
	if over != nil {
		setNonZero(&set.DialTimeout, over.DialTimeout)
		setNonZero(&set.PingInterval, over.PingInterval)
		setNonZero(&set.MessageLimit, over.MessageLimit)
		set.ProxyProtocol = over.ProxyProtocol
		setNonZero(&set.Record, over.Record)
	}
	return set
}

func setNonZero[T comparable](p *T, v T) {
	var zero T
	if v != zero {
		*p = v
	}
}

func offer(proto string) []string {
	if proto == "" {
		return nil
	}
	return []string{proto}
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// track registers a session unless the server is draining.
func (s *Server) track(sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[sess]; ok {
		delete(s.sessions, sess)
		s.doneIn += sess.bytesIn.Load()
		s.doneOut += sess.bytesOut.Load()
		s.wg.Done()
	}
}

// Shutdown stops accepting, lets live sessions run until ctx is done, then
// closes the rest with 1001 "Server shutting down", giving each the Linger
// to finish its close handshake before its connections are cut. It returns
// once every session has ended.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	servers := s.servers
	s.mu.Unlock()

	var hwg sync.WaitGroup
	for _, hs := range servers {
		hwg.Go(func() {
			if hs.Shutdown(ctx) != nil {
				hs.Close()
			}
		})
	}
	defer hwg.Wait()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}

	s.mu.Lock()
	live := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		live = append(live, sess)
	}
	s.mu.Unlock()
	s.log.Info("drain timeout: closing sessions", "sessions", len(live), "close_code", int(websocket.StatusGoingAway))
	for _, sess := range live {
		sess.shutdown()
	}
	t := time.NewTimer(s.cfg.Load().opts.Linger + time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		for _, sess := range live {
			sess.kill()
		}
		<-done
	}
	return nil
}

// TokenHash returns the short hash by which logs name a token: the first
// 12 hex digits of its SHA-256.
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:6])
}

func targetLabel(t targets.Target) string {
	if t.Label != "" {
		return t.Label
	}
	if t.Name != "" {
		return t.Name + "=" + t.String()
	}
	return t.String()
}

func closeConn(c net.Conn) {
	if c != nil {
		c.Close()
	}
}
