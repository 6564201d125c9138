package targets

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
)

// Route selects one configured target. A route names a Path, a Host, both,
// or a static Token; a route with none of them is the fallback that takes
// every request no other route takes.
type Route struct {
	// Path is the URL path the request must have, such as "/vnc".
	Path string
	// Host is the host name (without port) of the request's Host header.
	Host string
	// Token is a token that selects the target, wherever the bridge reads
	// tokens from. It cannot be combined with Path or Host.
	Token  string
	Target Target
}

// Router resolves a request in a fixed order, most specific first: a route
// with both the request's host and path; a route with its path; a route with
// its host; then, when the request carries a token, the static token routes
// and the token source; then the fallback route. A Router is safe for
// concurrent use.
type Router struct {
	hostPaths map[[2]string]Target
	paths     map[string]Target
	hosts     map[string]Target
	tokens    map[string]Target
	source    Resolver
	fallback  *Target
}

var _ Resolver = (*Router)(nil)

// NewRouter checks the routes and builds a Router. source may be nil. Two
// routes with the same selectors are refused, and so is a fallback route
// together with token routes or a token source: the fallback would catch
// every request whose token is unknown.
func NewRouter(routes []Route, source Resolver) (*Router, error) {
	r := &Router{
		hostPaths: make(map[[2]string]Target),
		paths:     make(map[string]Target),
		hosts:     make(map[string]Target),
		tokens:    make(map[string]Target),
		source:    source,
	}
	for _, rt := range routes {
		if err := r.add(rt); err != nil {
			return nil, err
		}
	}
	if r.fallback != nil && (source != nil || len(r.tokens) > 0) {
		return nil, fmt.Errorf("target %s has no path, host or token, so it would catch requests with unknown tokens: give it one", r.fallback.Name)
	}
	return r, nil
}

func (r *Router) add(rt Route) error {
	t := rt.Target
	if rt.Token != "" {
		if rt.Path != "" || rt.Host != "" {
			return fmt.Errorf("target %s: a token route cannot also have a path or host", t.Name)
		}
		if err := CheckToken(rt.Token, MaxTokenLen); err != nil {
			return fmt.Errorf("target %s: %w", t.Name, err)
		}
		return put(r.tokens, rt.Token, t, "a token")
	}
	var path, host string
	if rt.Path != "" {
		p, err := CleanRoutePath(rt.Path)
		if err != nil {
			return err
		}
		path = p
	}
	if rt.Host != "" {
		h, err := CleanRouteHost(rt.Host)
		if err != nil {
			return err
		}
		host = h
	}
	switch {
	case path != "" && host != "":
		return put(r.hostPaths, [2]string{host, path}, t, fmt.Sprintf("host %q with path %q", host, path))
	case path != "":
		return put(r.paths, path, t, fmt.Sprintf("path %q", path))
	case host != "":
		return put(r.hosts, host, t, fmt.Sprintf("host %q", host))
	case r.fallback != nil:
		return fmt.Errorf("two fallback targets (%s and %s): give all but one a path, host or token", r.fallback.Name, t.Name)
	}
	r.fallback = &t
	return nil
}

func put[K comparable](m map[K]Target, k K, t Target, what string) error {
	if prev, ok := m[k]; ok {
		return fmt.Errorf("%s is routed to both %s and %s", what, prev.Name, t.Name)
	}
	m[k] = t
	return nil
}

// CleanRoutePath checks a configured route path and returns the form requests
// are compared with: it must start with "/", and a trailing "/" is dropped.
func CleanRoutePath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("route path %q must start with /", p)
	}
	if strings.ContainsAny(p, "?#") {
		return "", fmt.Errorf("route path %q must not hold a query or fragment", p)
	}
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	return p, nil
}

// CleanRouteHost checks a configured route host name and returns the form
// requests are compared with: lower case, without a trailing dot.
func CleanRouteHost(h string) (string, error) {
	c := RequestHost(h)
	if c == "" || c != strings.ToLower(strings.TrimSuffix(h, ".")) || strings.ContainsAny(c, "/ \t*") {
		return "", fmt.Errorf("route host %q: want a host name without port, such as desk1.example.com", h)
	}
	return c, nil
}

// RequestHost returns the host name of a Host header as routes compare it:
// without the port or IPv6 brackets, lower case, without a trailing dot.
func RequestHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// Resolve implements Resolver.
func (r *Router) Resolve(ctx context.Context, req Request) (Target, error) {
	p := req.Path
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	var host string
	if len(r.hostPaths)+len(r.hosts) > 0 {
		host = RequestHost(req.Host) // lower-casing costs; only when a route needs it
	}
	if t, ok := r.hostPaths[[2]string{host, p}]; ok {
		return t, nil
	}
	if t, ok := r.paths[p]; ok {
		return t, nil
	}
	if t, ok := r.hosts[host]; ok {
		return t, nil
	}
	if r.source != nil || len(r.tokens) > 0 {
		if req.Token == "" {
			return Target{}, fmt.Errorf("no token in request: %w", ErrNotFound)
		}
		if err := CheckToken(req.Token, MaxJWTLen); err != nil {
			return Target{}, err
		}
		if t, ok := r.tokens[req.Token]; ok {
			return t, nil
		}
		if r.source == nil {
			return Target{}, fmt.Errorf("unknown token: %w", ErrNotFound)
		}
		return r.source.Resolve(ctx, req)
	}
	if r.fallback != nil {
		return *r.fallback, nil
	}
	return Target{}, fmt.Errorf("no route for path %q: %w", p, ErrNotFound)
}

// Chain asks each resolver in turn and returns the first target found. An
// error other than ErrNotFound stops the search, so that a source that is
// down is not mistaken for one that does not know the token.
type Chain []Resolver

var _ Resolver = Chain(nil)

// Resolve implements Resolver.
func (c Chain) Resolve(ctx context.Context, r Request) (Target, error) {
	for _, res := range c {
		t, err := res.Resolve(ctx, r)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return t, err
		}
	}
	return Target{}, fmt.Errorf("no source knows the token: %w", ErrNotFound)
}

// Restrict returns a Resolver that gives every target r finds the
// allowlist a, so that Dial refuses what a does not allow.
func Restrict(r Resolver, a *Allowlist) Resolver {
	if a == nil {
		return r
	}
	return restricted{r, a}
}

type restricted struct {
	r Resolver
	a *Allowlist
}

func (x restricted) Resolve(ctx context.Context, req Request) (Target, error) {
	t, err := x.r.Resolve(ctx, req)
	if err == nil {
		t.Allow = x.a
	}
	return t, err
}
