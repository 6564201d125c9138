package targets

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Route sends requests for one URL path to one target. A route with an empty
// Path is the fallback for every path no other route names.
type Route struct {
	Path   string
	Target Target
}

// Router resolves a request in a fixed order: a route whose path equals the
// request path; then, when a token source is set, the request's token; then
// the fallback route. A Router is safe for concurrent use.
type Router struct {
	paths    map[string]Target
	fallback *Target
	tokens   Resolver
}

var _ Resolver = (*Router)(nil)

// NewRouter checks the routes and builds a Router. tokens may be nil. A
// fallback route together with a token source is refused: the fallback would
// catch every request whose token is unknown.
func NewRouter(routes []Route, tokens Resolver) (*Router, error) {
	r := &Router{paths: make(map[string]Target), tokens: tokens}
	for _, rt := range routes {
		if rt.Path == "" {
			if r.fallback != nil {
				return nil, fmt.Errorf("two fallback targets (%s and %s): give all but one a path", r.fallback.Name, rt.Target.Name)
			}
			t := rt.Target
			r.fallback = &t
			continue
		}
		p, err := CleanRoutePath(rt.Path)
		if err != nil {
			return nil, err
		}
		if prev, ok := r.paths[p]; ok {
			return nil, fmt.Errorf("path %q is routed to both %s and %s", p, prev.Name, rt.Target.Name)
		}
		r.paths[p] = rt.Target
	}
	if r.fallback != nil && tokens != nil {
		return nil, fmt.Errorf("target %s has no path, so it would catch requests with unknown tokens: give it a path", r.fallback.Name)
	}
	return r, nil
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

// Resolve implements Resolver.
func (r *Router) Resolve(ctx context.Context, req Request) (Target, error) {
	p := req.Path
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	if t, ok := r.paths[p]; ok {
		return t, nil
	}
	if r.tokens != nil {
		if req.Token == "" {
			return Target{}, fmt.Errorf("no token in request: %w", ErrNotFound)
		}
		return r.tokens.Resolve(ctx, req)
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
