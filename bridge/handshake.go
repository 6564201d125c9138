package bridge

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wsbridge/wsbridge/targets"
)

// refusal is an answer given before the upgrade: an HTTP status and a short
// plain-text reason. The reason is shown to the client and logged, so it
// never carries internal error text or a token.
type refusal struct {
	status     int
	reason     string
	retryAfter time.Duration // sent as Retry-After when positive
	headers    []string      // more header names and values to send
	// kind names the refusal in metrics: a short constant, never text
	// from the request. "" takes the kind of the status.
	kind string
}

func (r *refusal) Error() string { return r.reason }

func refuse(status int, reason string) *refusal { return &refusal{status: status, reason: reason} }

// as sets the refusal's kind, for refusals whose status alone says too
// little.
func (r *refusal) as(kind string) *refusal {
	if r != nil {
		r.kind = kind
	}
	return r
}

// refusalKind is the metrics label of rf.
func refusalKind(rf *refusal) string {
	if rf.kind != "" {
		return rf.kind
	}
	switch rf.status {
	case http.StatusBadRequest, http.StatusMethodNotAllowed:
		return "bad_request"
	case http.StatusUnauthorized:
		return "auth_required"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusBadGateway:
		return "target_unreachable"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "other"
}

// isUpgrade reports whether r asks for a WebSocket. Such a request gets a
// WebSocket answer (101 or a 4xx saying what is wrong) and never a static file.
func isUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Upgrade", "websocket")
}

// checkUpgrade validates the handshake the way websocket.Accept will, so that
// a request Accept would refuse is refused before any target is dialled.
func checkUpgrade(r *http.Request) *refusal {
	if !r.ProtoAtLeast(1, 1) {
		return refuse(http.StatusBadRequest, "WebSocket needs HTTP/1.1")
	}
	if r.Method != http.MethodGet {
		return refuse(http.StatusMethodNotAllowed, "WebSocket handshake must be a GET")
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") {
		return refuse(http.StatusBadRequest, "Connection header must contain Upgrade")
	}
	if v := r.Header.Values("Sec-WebSocket-Version"); len(v) != 1 || strings.TrimSpace(v[0]) != "13" {
		rf := refuse(http.StatusBadRequest, "unsupported Sec-WebSocket-Version (13 is supported)")
		rf.headers = []string{"Sec-WebSocket-Version", "13"}
		return rf
	}
	if n := listLen(r.Header.Values("Sec-WebSocket-Protocol")); n > maxListed {
		return refuse(http.StatusBadRequest, "too many subprotocols offered")
	}
	if n := listLen(r.Header.Values("Sec-WebSocket-Extensions")); n > maxListed {
		return refuse(http.StatusBadRequest, "too many extensions offered")
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return refuse(http.StatusBadRequest, "want exactly one Sec-WebSocket-Key")
	}
	if k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0])); err != nil || len(k) != 16 {
		return refuse(http.StatusBadRequest, "invalid Sec-WebSocket-Key")
	}
	return nil
}

// maxListed caps the subprotocols and extensions a handshake may offer;
// real clients offer a handful.
const maxListed = 32

// listLen counts the comma-separated elements of a header's values.
func listLen(vals []string) int {
	n := 0
	for _, v := range vals {
		n += strings.Count(v, ",") + 1
	}
	return n
}

// headerHasToken reports whether any comma-separated element of the header
// equals token, ignoring case and surrounding spaces.
func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// Mode is how a session frames the bytes it relays.
type Mode uint8

const (
	// Binary relays bytes in binary messages (subprotocol "binary" or none).
	Binary Mode = iota
	// Base64 relays bytes as base64 text messages (subprotocol "base64"),
	// as websockify 0.8 and older did.
	Base64
)

// String returns the subprotocol name as it is logged.
func (m Mode) String() string {
	if m == Base64 {
		return "base64"
	}
	return "binary"
}

// Supported subprotocol names, in order of preference.
const (
	protoBinary = "binary"
	protoBase64 = "base64"
)

// errSubprotocol is returned by NegotiateSubprotocol when the client offered
// only names wsbridge does not speak.
var errSubprotocol = errors.New(`unsupported subprotocol: wsbridge speaks "binary" and "base64" (or none)`)

// NegotiateSubprotocol picks the subprotocol to answer from the values of the
// client's Sec-WebSocket-Protocol headers. Names are compared exactly after
// trimming spaces (RFC 6455 names are case-sensitive). With nothing offered it
// answers no subprotocol and relays binary frames, as noVNC 1.x expects;
// "binary" wins over "base64" wherever it stands in the list.
func NegotiateSubprotocol(offered []string) (name string, m Mode, err error) {
	other, b64 := false, false
	for _, v := range offered {
		for t := range strings.SplitSeq(v, ",") {
			switch strings.TrimSpace(t) {
			case "":
			case protoBinary:
				return protoBinary, Binary, nil
			case protoBase64:
				b64 = true
			default:
				other = true
			}
		}
	}
	switch {
	case b64:
		return protoBase64, Base64, nil
	case other:
		return "", Binary, errSubprotocol
	}
	return "", Binary, nil
}

// TokenFrom says where the bridge reads a request's token.
type TokenFrom struct {
	// Place is "query" (the default, websockify's ?token=...), "path" (the
	// path segment after PathPrefix), "cookie" or "host" (the Host header
	// without its port, websockify's --host-token).
	Place string
	// Name is the query parameter or cookie that holds the token. Default
	// "token".
	Name string
	// PathPrefix, for Place "path", is what comes before the token: with
	// "/t/", a request for /t/abc carries the token "abc". Default "/".
	PathPrefix string
}

// ValidTokenFrom checks a TokenFrom as configuration.
func ValidTokenFrom(f TokenFrom) error {
	switch f.Place {
	case "", "query", "path", "cookie", "host":
	default:
		return fmt.Errorf("token place %q: want query, path, cookie or host", f.Place)
	}
	if f.PathPrefix != "" && (!strings.HasPrefix(f.PathPrefix, "/") || !strings.HasSuffix(f.PathPrefix, "/")) {
		return fmt.Errorf("token path prefix %q must start and end with /", f.PathPrefix)
	}
	return nil
}

// ExtractToken reads the token from where f says, or returns "" when the
// request carries none. What it returns is unchecked: targets.CheckToken
// decides whether a token is well formed. Ambiguity (two token parameters
// or cookies that differ) is refused rather than guessed at.
func ExtractToken(r *http.Request, f TokenFrom) (string, error) {
	name := f.Name
	if name == "" {
		name = "token"
	}
	switch f.Place {
	case "", "query":
		return tokenFromQuery(r.URL, name)
	case "path":
		prefix := f.PathPrefix
		if prefix == "" {
			prefix = "/"
		}
		tok, _ := strings.CutPrefix(r.URL.Path, prefix)
		if len(tok) == len(r.URL.Path) {
			return "", nil
		}
		return tok, nil
	case "cookie":
		tok := ""
		for _, c := range r.CookiesNamed(name) {
			if tok != "" && c.Value != tok {
				return "", refuse(http.StatusBadRequest, "more than one token cookie")
			}
			tok = c.Value
		}
		return tok, nil
	case "host":
		if len(r.Header.Values("Host")) > 1 {
			return "", refuse(http.StatusBadRequest, "more than one Host header")
		}
		return targets.RequestHost(r.Host), nil
	}
	return "", refuse(http.StatusInternalServerError, "token place not configured")
}

// tokenFromQuery returns the value of the token query parameter, trailing
// newlines removed as websockify does. More than one token parameter is
// refused rather than guessed at.
func tokenFromQuery(u *url.URL, name string) (string, error) {
	if u.RawQuery == "" {
		return "", nil
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", refuse(http.StatusBadRequest, "malformed query")
	}
	v := q[name]
	switch len(v) {
	case 0:
		return "", nil
	case 1:
		return strings.TrimRight(v[0], "\n"), nil
	}
	return "", refuse(http.StatusBadRequest, "more than one token parameter")
}
