package targets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// HTTPLookupOptions configure an HTTP lookup source.
type HTTPLookupOptions struct {
	// URL is an http or https URL with one "%s" where the token goes, as
	// websockify's --token-source for JSONTokenApi.
	URL string
	// Timeout bounds each lookup. Default 2s.
	Timeout time.Duration
	// CacheTTL is how long a found target is remembered. Default 5s;
	// negative turns the cache off.
	CacheTTL time.Duration
	// Allow limits the targets the service may name. Nil allows every
	// target, which only the websockify command line does, with a warning.
	Allow *Allowlist
	// Logger receives one error line when the service stops answering and
	// one when it answers again. Default: discard.
	Logger *slog.Logger
}

// HTTPLookup resolves a token by asking a web service, as websockify's
// JSONTokenApi and BaseTokenAPI do: GET the URL with the token put in,
// and read a 2xx reply of JSON {"host": "h", "port": 5900} or plain
// "host:port". 404, 410 and other 4xx replies mean "unknown token"; 5xx
// replies, timeouts and redirects mean the service is unavailable (the
// bridge answers 503). Unlike websockify, the token is percent-encoded
// before it goes into the URL, the lookup has a timeout and the reply a
// size cap (4 KiB). An HTTPLookup is safe for concurrent use.
type HTTPLookup struct {
	opts   HTTPLookupOptions
	client *http.Client
	cache  cache
	health health
}

var _ Resolver = (*HTTPLookup)(nil)

const maxLookupReply = 4 << 10

// NewHTTPLookup checks the URL template and returns the source.
func NewHTTPLookup(opts *HTTPLookupOptions) (*HTTPLookup, error) {
	o := *opts
	if err := CheckLookupURL(o.URL); err != nil {
		return nil, err
	}
	setDefault(&o.Timeout, 2*time.Second)
	setDefault(&o.CacheTTL, 5*time.Second)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the lookup service is the operator's; no proxy from the environment
	tr.MaxIdleConnsPerHost = 16
	return &HTTPLookup{
		opts: o,
		client: &http.Client{
			Transport: tr,
			Timeout:   o.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return errors.New("the lookup service answered with a redirect, which wsbridge does not follow")
			},
		},
		cache:  cache{ttl: o.CacheTTL},
		health: health{log: o.Logger, what: "token lookup service", attrs: []any{"url", o.URL}},
	}, nil
}

// CheckLookupURL checks a lookup URL template: http or https, with exactly
// one "%s".
func CheckLookupURL(tmpl string) error {
	if strings.Count(tmpl, "%s") != 1 {
		return fmt.Errorf("lookup URL %q must hold exactly one %%s where the token goes", tmpl)
	}
	u, err := url.Parse(strings.Replace(tmpl, "%s", "token", 1))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("lookup URL %q: want an http or https URL such as http://host/tokens/%%s", tmpl)
	}
	return nil
}

// Close closes idle connections to the service.
func (h *HTTPLookup) Close() error {
	h.client.CloseIdleConnections()
	return nil
}

// Resolve implements Resolver with the request's token.
func (h *HTTPLookup) Resolve(ctx context.Context, req Request) (Target, error) {
	if err := CheckToken(req.Token, MaxTokenLen); err != nil {
		return Target{}, err
	}
	now := time.Now()
	if t, ok := h.cache.get(req.Token, now); ok {
		return t, nil
	}
	t, err := h.lookup(ctx, req.Token)
	if err != nil && ctx.Err() != nil {
		// The client went away; that says nothing about the service.
		return Target{}, fmt.Errorf("lookup abandoned: %w", ctx.Err())
	}
	if errors.Is(err, ErrUnavailable) {
		h.health.failed(err)
		return Target{}, err
	}
	h.health.answered()
	if err != nil {
		return Target{}, err
	}
	t.Allow = h.opts.Allow
	h.cache.put(req.Token, t, now)
	return t, nil
}

func (h *HTTPLookup) lookup(ctx context.Context, token string) (Target, error) {
	u := strings.Replace(h.opts.URL, "%s", escapeToken(token), 1)
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Target{}, fmt.Errorf("lookup request: %w: %w", err, ErrUnavailable)
	}
	r.Header.Set("Accept", "application/json, text/plain")
	resp, err := h.client.Do(r)
	if err != nil {
		// The error holds the URL, and so the token; say only what failed.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Target{}, fmt.Errorf("lookup: %w: %w", err, ErrUnavailable)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxLookupReply+1))
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode < 200 || (resp.StatusCode >= 300 && resp.StatusCode < 400):
		return Target{}, fmt.Errorf("lookup answered %s: %w", resp.Status, ErrUnavailable)
	case resp.StatusCode >= 400:
		return Target{}, fmt.Errorf("lookup answered %s: %w", resp.Status, ErrNotFound)
	case err != nil:
		return Target{}, fmt.Errorf("lookup reply: %w: %w", err, ErrUnavailable)
	case len(body) > maxLookupReply:
		return Target{}, fmt.Errorf("lookup reply over %d bytes: %w", maxLookupReply, ErrNotFound)
	}
	t, err := ParseLookupReply(body)
	if err != nil {
		return Target{}, fmt.Errorf("lookup reply: %w: %w", err, ErrNotFound)
	}
	return t, nil
}

// escapeToken percent-encodes everything but RFC 3986's unreserved
// characters, so the token reads the same in a path and in a query.
func escapeToken(tok string) string {
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// ParseLookupReply reads a lookup reply: JSON {"host": "h", "port": 5900}
// (port a number or a string; host "unix_socket" with the socket path as
// port, as websockify returns it) or plain "host:port".
func ParseLookupReply(body []byte) (Target, error) {
	body = bytes.TrimSpace(body)
	if !bytes.HasPrefix(body, []byte("{")) {
		return parseTokenTarget(string(body))
	}
	var j struct {
		Host string          `json:"host"`
		Port json.RawMessage `json:"port"`
	}
	if err := json.Unmarshal(body, &j); err != nil {
		return Target{}, fmt.Errorf(`want JSON {"host": "...", "port": ...}: %w`, err)
	}
	return hostPortClaims(j.Host, j.Port)
}

// hostPortClaims maps websockify's (host, port) pair, as the HTTP lookup and
// JWT claims carry it, to a target.
func hostPortClaims(host string, port json.RawMessage) (Target, error) {
	if host == "" {
		return Target{}, errors.New(`no "host"`)
	}
	var p string
	if len(port) == 0 || string(port) == "null" {
		return Target{}, errors.New(`no "port"`)
	}
	if err := json.Unmarshal(port, &p); err != nil {
		var n uint64
		if err := json.Unmarshal(port, &n); err != nil {
			return Target{}, fmt.Errorf(`"port" %s is neither a number nor a string`, port)
		}
		p = strconv.FormatUint(n, 10)
	}
	if host == "unix_socket" {
		return parseTokenTarget("unix_socket:" + p)
	}
	return hostPort(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), p)
}
