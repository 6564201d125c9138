package bridge

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// The door: the checks every request passes before anything is looked up
// or dialled. Host and Origin are compared as browsers send them (lower
// case, no trailing dot, no default port): a program that sends another
// spelling can be configured to send this one, and a plain string compare
// leaves no room for normalisation tricks.

// hostPattern is one entry of Options.Hosts: a name or address, or
// "*.suffix" for every name below suffix.
type hostPattern struct {
	name     string
	wildcard bool // name is ".suffix"
}

// ParseHostPattern checks one entry of Options.Hosts: a host name, an IP
// address ("[::1]" for IPv6) or "*.example.com". Ports are not part of it.
func ParseHostPattern(p string) error {
	_, err := parseHostPattern(p)
	return err
}

func parseHostPattern(p string) (hostPattern, error) {
	switch {
	case p == "":
		return hostPattern{}, errors.New("empty host name")
	case p != strings.ToLower(p):
		return hostPattern{}, fmt.Errorf("host %q: write it in lower case, as browsers send it", p)
	case strings.ContainsAny(p, "/@?# \t"):
		return hostPattern{}, fmt.Errorf("host %q: want a name such as vnc.example.com, *.example.com or [::1], without scheme, port or path", p)
	}
	if rest, ok := strings.CutPrefix(p, "*."); ok {
		if rest == "" || strings.Contains(rest, "*") {
			return hostPattern{}, fmt.Errorf("host %q: a wildcard is one leading *. before a domain", p)
		}
		return hostPattern{name: "." + rest, wildcard: true}, nil
	}
	if strings.Contains(p, "*") {
		return hostPattern{}, fmt.Errorf("host %q: a wildcard is one leading *. before a domain", p)
	}
	if strings.Contains(p, ":") && !(strings.HasPrefix(p, "[") && strings.HasSuffix(p, "]")) {
		return hostPattern{}, fmt.Errorf("host %q: no port here (an IPv6 address goes in brackets)", p)
	}
	return hostPattern{name: p}, nil
}

func (h hostPattern) match(host string) bool {
	if h.wildcard {
		return len(host) > len(h.name) && strings.HasSuffix(host, h.name)
	}
	return host == h.name
}

// hostName is the Host header without its port.
func hostName(host string) string {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i >= 0 {
			return host[:i+1]
		}
		return host
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		if _, err := strconv.ParseUint(host[i+1:], 10, 16); err == nil {
			return host[:i]
		}
	}
	return host
}

// checkHost applies Options.Hosts, which defends against DNS rebinding: a
// page on an attacker's name that resolves to this bridge sends that name
// as Host.
func (c *config) checkHost(r *http.Request) *refusal {
	if len(c.hosts) == 0 {
		return nil
	}
	if len(r.Header.Values("Host")) > 1 {
		return refuse(http.StatusBadRequest, "more than one Host header")
	}
	name := hostName(r.Host)
	for _, h := range c.hosts {
		if h.match(name) {
			return nil
		}
	}
	return refuse(http.StatusForbidden, "host not allowed")
}

// sameHost reports whether origin o names the host and port of the Host
// header, where either may leave out the scheme's default port.
func sameHost(o origin, host string) bool {
	name := hostName(host)
	port := strings.TrimPrefix(host[len(name):], ":")
	if o.host != name {
		return false
	}
	def := defaultPort(o.scheme)
	return o.port == port || o.port == "" && port == def || port == "" && o.port == def
}

// origin is a serialised origin: scheme://host[:port].
type origin struct {
	scheme, host, port string // port "" is the scheme's default
}

func defaultPort(scheme string) string {
	switch scheme {
	case "http", "ws":
		return "80"
	case "https", "wss":
		return "443"
	}
	return ""
}

// parseOrigin reads an origin as a browser serialises it, and nothing
// else: lower case, no path, no user, no trailing dot, no default port.
func parseOrigin(s string) (origin, bool) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || rest == "" || s != strings.ToLower(s) {
		return origin{}, false
	}
	for i, c := range scheme {
		if !(c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return origin{}, false
		}
	}
	if strings.ContainsAny(rest, "/?#@\\ \t%") {
		return origin{}, false
	}
	o := origin{scheme: scheme, host: rest}
	if h := hostName(rest); h != rest {
		o.host, o.port = h, rest[len(h)+1:]
		if o.port == defaultPort(scheme) || o.port == "" || o.port[0] == '0' {
			return origin{}, false
		}
	} else if strings.HasPrefix(rest, "[") != strings.HasSuffix(rest, "]") || strings.Contains(strings.Trim(rest, "[]"), "]") {
		return origin{}, false
	} else if !strings.HasPrefix(rest, "[") && strings.Contains(rest, ":") {
		return origin{}, false
	}
	if o.host == "" || strings.HasSuffix(o.host, ".") || strings.HasPrefix(o.host, ".") || strings.Contains(o.host, "..") {
		return origin{}, false
	}
	return o, true
}

// originPattern is one entry of Options.Origins.
type originPattern struct {
	null bool
	o    origin // o.host may be ".suffix" with wildcard
	wild bool
}

// ParseOriginPattern checks one entry of Options.Origins:
// "scheme://host[:port]", "scheme://*.domain[:port]" or "null".
func ParseOriginPattern(p string) error {
	_, err := parseOriginPattern(p)
	return err
}

func parseOriginPattern(p string) (originPattern, error) {
	if p == "null" {
		return originPattern{null: true}, nil
	}
	bad := fmt.Errorf("origin %q: want scheme://host[:port] in lower case, such as https://vnc.example.com or https://*.example.com:8443, or null", p)
	wild := false
	s := p
	if scheme, rest, ok := strings.Cut(p, "://*."); ok {
		wild, s = true, scheme+"://"+rest
	}
	// A default port in the pattern is the same origin without it.
	if scheme, _, ok := strings.Cut(s, "://"); ok {
		s = strings.TrimSuffix(s, ":"+defaultPort(scheme))
	}
	o, ok := parseOrigin(s)
	if !ok {
		return originPattern{}, bad
	}
	if wild {
		if strings.HasPrefix(o.host, "[") {
			return originPattern{}, bad
		}
		o.host = "." + o.host
	}
	return originPattern{o: o, wild: wild}, nil
}

func (p originPattern) match(o origin) bool {
	if p.null || p.o.scheme != o.scheme || p.o.port != o.port {
		return false
	}
	if p.wild {
		return len(o.host) > len(p.o.host) && strings.HasSuffix(o.host, p.o.host)
	}
	return p.o.host == o.host
}

// checkOrigin admits a browser whose page came from this host (its Origin's
// host and port equal the Host header, whatever the scheme, since a proxy
// in front may have ended TLS) or from a listed origin. The opaque origin
// "null" (sandboxed frames, file:// pages) passes only when listed. A
// request without Origin comes from a program, not a browser, and passes
// unless Options.RefuseNoOrigin.
func (c *config) checkOrigin(r *http.Request) *refusal {
	vals := r.Header.Values("Origin")
	switch len(vals) {
	case 0:
		if c.opts.RefuseNoOrigin {
			return refuse(http.StatusForbidden, "no Origin header (only browsers are expected here)")
		}
		return nil
	case 1:
	default:
		return refuse(http.StatusForbidden, "more than one Origin header")
	}
	if vals[0] == "null" {
		if slices.ContainsFunc(c.origins, func(p originPattern) bool { return p.null }) {
			return nil
		}
		return refuse(http.StatusForbidden, "origin null is not allowed")
	}
	o, ok := parseOrigin(vals[0])
	if !ok {
		return refuse(http.StatusForbidden, "malformed Origin header")
	}
	if sameHost(o, r.Host) {
		return nil
	}
	for _, p := range c.origins {
		if p.match(o) {
			return nil
		}
	}
	return refuse(http.StatusForbidden, "origin not allowed")
}

// Identity names who a request authenticated as, in the forms Auth.Allow
// and targets.Settings.Identities list: "user:NAME" (HTTP Basic),
// "bearer:NAME" (a bearer token's name), and for a verified client
// certificate "cn:NAME" (its subject CN) plus "cert:NAME" for the CN and
// every DNS, e-mail and URI name. A request may carry several.
type Identity []string

// Allowed reports whether any of the identity's names is in list.
func (id Identity) Allowed(list []string) bool {
	for _, n := range id {
		if slices.Contains(list, n) {
			return true
		}
	}
	return false
}

// ValidIdentity checks an entry of an identity list.
func ValidIdentity(s string) error {
	kind, name, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return fmt.Errorf("identity %q: want user:NAME, bearer:NAME, cert:NAME or cn:NAME", s)
	}
	switch kind {
	case "user", "bearer", "cert", "cn":
		return nil
	}
	return fmt.Errorf("identity %q: want user:NAME, bearer:NAME, cert:NAME or cn:NAME", s)
}

// PasswordChecker checks HTTP Basic credentials. It may be called from
// several goroutines.
type PasswordChecker interface {
	CheckPassword(user, password string) bool
}

// BearerChecker checks a bearer token and returns its name. It may be
// called from several goroutines.
type BearerChecker interface {
	CheckBearer(token string) (name string, ok bool)
}

// Auth is how a listener authenticates requests. Credentials that are
// presented are always checked, before any token lookup; a wrong password
// or bearer token is a 401 and spends one of the address's failed lookups,
// so guessing is as slow as guessing tokens.
type Auth struct {
	// Realm is the realm of the Basic challenge. Default "wsbridge".
	Realm string
	// Passwords checks HTTP Basic credentials; nil turns Basic off.
	Passwords PasswordChecker
	// Bearer checks "Authorization: Bearer" tokens; nil turns them off.
	Bearer BearerChecker
	// Require refuses every upgrade that carries no identity with 401.
	Require bool
	// Allow lists the identities this listener admits; empty admits every
	// authenticated request (and, without Require, anonymous ones).
	Allow []string
	// Web applies Require and Allow to the web root as well.
	Web bool
}

// certIdentity names a verified client certificate.
func certIdentity(st *tls.ConnectionState) Identity {
	if st == nil || len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return nil
	}
	leaf := st.VerifiedChains[0][0]
	var id Identity
	if cn := leaf.Subject.CommonName; cn != "" {
		id = append(id, "cn:"+cn, "cert:"+cn)
	}
	for _, n := range leaf.DNSNames {
		id = append(id, "cert:"+n)
	}
	for _, n := range leaf.EmailAddresses {
		id = append(id, "cert:"+n)
	}
	for _, u := range leaf.URIs {
		id = append(id, "cert:"+u.String())
	}
	return id
}

// errBadCredentials marks credentials that were presented and wrong.
var errBadCredentials = errors.New("bridge: wrong credentials")

// authenticate returns the request's identity (nil when anonymous). A
// refusal is for credentials that are malformed or wrong; it wraps
// errBadCredentials when they were wrong. An Authorization header in a
// scheme this listener does not take is ignored, not refused: a proxy in
// front may have used it, and a browser sends what it used for the page.
func (c *config) authenticate(r *http.Request, st *tls.ConnectionState) (Identity, *refusal, error) {
	id := certIdentity(st)
	a := c.opts.Auth
	vals := r.Header.Values("Authorization")
	if a == nil || a.Passwords == nil && a.Bearer == nil || len(vals) == 0 {
		return id, nil, nil
	}
	if len(vals) > 1 {
		return nil, refuse(http.StatusBadRequest, "more than one Authorization header"), nil
	}
	scheme, cred, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	cred = strings.TrimSpace(cred)
	switch {
	case strings.EqualFold(scheme, "Basic") && a.Passwords != nil:
		raw, err := base64.StdEncoding.DecodeString(cred)
		user, pass, ok := strings.Cut(string(raw), ":")
		if err != nil || !ok || user == "" {
			return nil, refuse(http.StatusBadRequest, "malformed Basic credentials"), nil
		}
		if !a.Passwords.CheckPassword(user, pass) {
			return nil, c.challenge("wrong user name or password"), errBadCredentials
		}
		return append(id, "user:"+user), nil, nil
	case strings.EqualFold(scheme, "Bearer") && a.Bearer != nil:
		name, ok := a.Bearer.CheckBearer(cred)
		if !ok {
			return nil, c.challenge("wrong bearer token"), errBadCredentials
		}
		return append(id, "bearer:"+name), nil, nil
	}
	return id, nil, nil
}

// challenge is a 401 that names the schemes this listener accepts.
func (c *config) challenge(reason string) *refusal {
	rf := refuse(http.StatusUnauthorized, reason)
	a := c.opts.Auth
	if a == nil {
		return rf
	}
	if a.Passwords != nil {
		realm := a.Realm
		if realm == "" {
			realm = "wsbridge"
		}
		rf.headers = append(rf.headers, "WWW-Authenticate", `Basic realm=`+strconv.Quote(realm)+`, charset="UTF-8"`)
	}
	if a.Bearer != nil {
		rf.headers = append(rf.headers, "WWW-Authenticate", "Bearer")
	}
	return rf
}

// admitIdentity applies an identity list: nil when id may pass, else 401
// for no identity and 403 for the wrong one.
func (c *config) admitIdentity(id Identity, require bool, allow []string) *refusal {
	switch {
	case len(id) == 0 && (require || len(allow) > 0):
		return c.challenge("authentication required")
	case len(allow) > 0 && !id.Allowed(allow):
		return refuse(http.StatusForbidden, "not allowed for this identity")
	}
	return nil
}

// door runs the checks shared by upgrades and the web root: TLS where a
// client certificate is required, and authentication. web says the
// request is for the web root.
func (s *Server) door(c *config, r *http.Request, st *tls.ConnectionState, web bool, log *slog.Logger) (Identity, *refusal) {
	if c.opts.RequireClientCert && certIdentity(st) == nil {
		return nil, refuse(http.StatusForbidden, "a client certificate is required (connect with https:// or wss://)")
	}
	if web && (c.opts.Auth == nil || !c.opts.Auth.Web) {
		return nil, nil
	}
	id, rf, err := c.authenticate(r, st)
	if rf != nil {
		if errors.Is(err, errBadCredentials) {
			s.spendFailure(c, log, remoteAddr(r))
		}
		return nil, rf
	}
	if a := c.opts.Auth; a != nil {
		if rf := c.admitIdentity(id, a.Require, a.Allow); rf != nil {
			return nil, rf
		}
	}
	return id, nil
}
