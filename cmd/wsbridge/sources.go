package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/internal/tlsfiles"
	"github.com/wsbridge/wsbridge/targets"
)

// sourceSpec is one validated token source, in the order of the chain.
type sourceSpec struct {
	kind, name string // block type and label: "token_redis", "fleet"

	file    *TokenFileConfig
	names   bool // a token_file of style "names"
	redis   *targets.RedisOptions
	jwt     *targets.JWTOptions
	http    *targets.HTTPLookupOptions
	sockDir string
	allow   *targets.Allowlist // nil: every target (token files, or --token-plugin without --allow); buildSource hands it on
}

func (s *sourceSpec) label() string { return s.kind + " " + strconv.Quote(s.name) }

// dynamic reports whether the source's targets come from outside the
// configuration, so that it needs an allowlist.
func (s *sourceSpec) dynamic() bool { return s.redis != nil || s.jwt != nil || s.http != nil }

var sourceKinds = []string{"token_file", "token_redis", "token_jwt", "token_http", "socket_dir"}

// sourceOrder returns "kind name" for every token source in the order the
// file lists them (the order of the chain). A config from the command line
// has one source at most; its order is by kind.
func (s *source) sourceOrder(cfg *Config) []string {
	if s != nil && s.body != nil {
		var order []string
		for _, b := range s.body.Blocks {
			if len(b.Labels) > 0 && slices.Contains(sourceKinds, b.Type) {
				order = append(order, b.Type+" "+b.Labels[0])
			}
		}
		return order
	}
	var order []string
	add := func(kind string, names ...string) {
		for _, n := range names {
			order = append(order, kind+" "+n)
		}
	}
	for _, c := range cfg.TokenFiles {
		add("token_file", c.Name)
	}
	for _, c := range cfg.TokenRedis {
		add("token_redis", c.Name)
	}
	for _, c := range cfg.TokenJWT {
		add("token_jwt", c.Name)
	}
	for _, c := range cfg.TokenHTTP {
		add("token_http", c.Name)
	}
	for _, c := range cfg.SocketDirs {
		add("socket_dir", c.Name)
	}
	return order
}

// validateToken checks the token block into the bridge options.
func (v *validator) validateToken(tc *TokenConfig, b *bridge.Options) {
	if tc == nil {
		return
	}
	b.Token = bridge.TokenFrom{Place: tc.From, Name: tc.Name, PathPrefix: tc.PathPrefix}
	// Checked one field at a time, so each error points at its own.
	if err := bridge.ValidTokenFrom(bridge.TokenFrom{Place: tc.From}); err != nil {
		v.errorf(v.src.at("token", "from"), "token.from", "%v", err)
	}
	if err := bridge.ValidTokenFrom(bridge.TokenFrom{PathPrefix: tc.PathPrefix}); err != nil {
		v.errorf(v.src.at("token", "path_prefix"), "token.path_prefix", "%v", err)
	}
	if tc.Name == "" {
		v.errorf(v.src.at("token", "name"), "token.name", "must not be empty")
	}
	switch {
	case tc.MaxFailures < 0:
		v.errorf(v.src.at("token", "max_failures"), "token.max_failures", "%d: want 0 (off) or more", tc.MaxFailures)
	case tc.MaxFailures == 0:
		b.FailedLookups = -1
	default:
		b.FailedLookups = tc.MaxFailures
	}
	b.FailedLookupWindow = v.positive(tc.FailureWindow, "token", "failure_window")
	b.FailedLookupBan = v.positive(tc.Ban, "token", "ban")
}

// validateTargets checks the target blocks into routes, with positions
// for every overlap.
func (v *validator) validateTargets(cfg *Config, st *settings) (fallback string, tokenRoutes bool) {
	seen := map[string]string{} // selector key -> target name
	for _, tc := range cfg.Targets {
		label := "target " + strconv.Quote(tc.Name)
		t, err := targets.ParseAddress(tc.Address)
		if err != nil {
			v.errorf(v.src.at("target", tc.Name, "address"), label+" address", "%v", err)
		}
		t.Name = tc.Name
		rt := targets.Route{Path: tc.Path, Host: tc.Host, Token: tc.Token, Target: t}
		// key identifies the requests the target takes; field is where an
		// overlap is reported and words how it is described.
		var key, field, words string
		switch {
		case tc.Token != "":
			if tc.Path != "" || tc.Host != "" {
				v.errorf(v.src.at("target", tc.Name, "token"), label+" token", "a target chosen by token cannot also have a path or host: the token alone selects it")
			}
			if err := targets.CheckToken(tc.Token, targets.MaxTokenLen); err != nil {
				v.errorf(v.src.at("target", tc.Name, "token"), label+" token", "%v (tokens are 1 to %d of A-Z a-z 0-9 - . _ ~ + = @, without \"..\")", err, targets.MaxTokenLen)
			}
			key, field, words = "token\x00"+tc.Token, "token", "token"
			tokenRoutes = true
		case tc.Path == "" && tc.Host == "":
			if fallback != "" {
				v.errorf(v.src.at("target", tc.Name, "address"), label,
					"targets %q and %q both have no path, host or token, so both would take every request: give one a path", fallback, tc.Name)
			}
			fallback = tc.Name
		default:
			path, host := "", ""
			if tc.Path != "" {
				if path, err = targets.CleanRoutePath(tc.Path); err != nil {
					v.errorf(v.src.at("target", tc.Name, "path"), label+" path", "%v", err)
				}
			}
			if tc.Host != "" {
				if host, err = targets.CleanRouteHost(tc.Host); err != nil {
					v.errorf(v.src.at("target", tc.Name, "host"), label+" host", "%v", err)
				}
			}
			key, field, words = "route\x00"+host+"\x00"+path, "path", "path"
			switch {
			case host != "" && path != "":
				words = "host and path"
			case host != "":
				field, words = "host", "host"
			}
		}
		if key != "" {
			if prev, ok := seen[key]; ok {
				v.errorf(v.src.at("target", tc.Name, field), label+" "+field, "target %q already takes the requests with this %s", prev, words)
			}
			seen[key] = tc.Name
		}

		var set targets.Settings
		if tc.DialTimeout != "" {
			set.DialTimeout = v.positive(tc.DialTimeout, "target", tc.Name, "dial_timeout")
		}
		if tc.PingInterval != "" {
			set.PingInterval = offIfZero(v.duration(tc.PingInterval, "target", tc.Name, "ping_interval"))
		}
		if tc.MessageLimit != "" {
			set.MessageLimit = v.size(tc.MessageLimit, 1, 1<<30, "target", tc.Name, "message_limit")
		}
		for _, id := range tc.Identities {
			if err := bridge.ValidIdentity(id); err != nil {
				v.errorf(v.src.at("target", tc.Name, "identities"), label+" identities", "%v", err)
			}
		}
		if len(tc.Identities) > 0 && cfg.Auth == nil && (cfg.TLS == nil || cfg.TLS.ClientCA == "") {
			v.errorf(v.src.at("target", tc.Name, "identities"), label+" identities", "nothing authenticates requests: add an auth block, or tls.client_ca for client certificates")
		}
		set.Identities = tc.Identities
		if tc.MaxSessions < 0 {
			v.errorf(v.src.at("target", tc.Name, "max_sessions"), label+" max_sessions", "%d: want 0 (the limits block's cap) or more", tc.MaxSessions)
		}
		set.MaxSessions = tc.MaxSessions
		set.BandwidthIn = v.bandwidth(tc.BandwidthIn, "target", tc.Name, "bandwidth_in")
		set.BandwidthOut = v.bandwidth(tc.BandwidthOut, "target", tc.Name, "bandwidth_out")
		switch tc.ProxyProtocol {
		case "":
		case "v1":
			set.ProxyProtocol = 1
		case "v2":
			set.ProxyProtocol = 2
		default:
			v.errorf(v.src.at("target", tc.Name, "proxy_protocol"), label+" proxy_protocol", "%q: want v1 or v2", tc.ProxyProtocol)
		}
		set.Record = tc.Record
		if set.DialTimeout != 0 || set.PingInterval != 0 || set.MessageLimit != 0 || len(set.Identities) > 0 ||
			set.MaxSessions != 0 || set.BandwidthIn != 0 || set.BandwidthOut != 0 || set.ProxyProtocol != 0 || set.Record != "" {
			rt.Target.Settings = &set
		}
		if tc.TLS != nil {
			if st.routeTLS == nil {
				st.routeTLS = map[string]*tlsfiles.ClientOptions{}
			}
			st.routeTLS[tc.Name] = v.targetTLS(tc.TLS, "target", tc.Name, "tls")
		}
		st.routes = append(st.routes, rt)
	}
	return fallback, tokenRoutes
}

// validateSources checks every token source block, in chain order.
func (v *validator) validateSources(cfg *Config, st *settings) {
	for _, key := range v.src.sourceOrder(cfg) {
		kind, name, _ := strings.Cut(key, " ")
		spec := &sourceSpec{kind: kind, name: name}
		var allow []string
		at := func(attr string) *hcl.Range { return v.src.at(kind, name, attr) }
		field := func(attr string) string { return spec.label() + " " + attr }
		switch kind {
		case "token_file":
			c := findNamed(cfg.TokenFiles, name, func(c TokenFileConfig) string { return c.Name })
			spec.file, allow = c, c.Allow
			if c.Path == "" {
				v.errorf(at("path"), field("path"), "must name a file or directory")
			}
			switch c.Style {
			case "", "lines":
			case "names":
				spec.names = true
			default:
				v.errorf(at("style"), field("style"), "%q: want lines (websockify TokenFile: \"token: host:port\" lines) or names (TokenFileName: the file name is the token)", c.Style)
			}
		case "token_redis":
			c := findNamed(cfg.TokenRedis, name, func(c TokenRedisConfig) string { return c.Name })
			allow = c.Allow
			o := &targets.RedisOptions{Addr: c.Address, DB: c.DB, Username: c.Username, Password: c.Password, Namespace: c.Namespace}
			if c.Address != "" {
				if _, _, err := splitHostPort(c.Address); err != nil {
					v.errorf(at("address"), field("address"), "%q: want host:port", c.Address)
				}
			}
			if c.DB < 0 {
				v.errorf(at("db"), field("db"), "%d: want 0 or more", c.DB)
			}
			o.Timeout = v.optionalPositive(c.Timeout, kind, name, "timeout")
			o.CacheTTL = v.optionalTTL(c.CacheTTL, kind, name, "cache_ttl")
			spec.redis = o
		case "token_jwt":
			c := findNamed(cfg.TokenJWT, name, func(c TokenJWTConfig) string { return c.Name })
			allow = c.Allow
			o := &targets.JWTOptions{KeyFile: c.KeyFile, Algorithms: c.Algorithms, Audience: c.Audience,
				SecretEncoding: c.SecretEncoding, RequireExpiry: c.RequireExp == nil || *c.RequireExp}
			if c.Leeway != "" {
				o.Leeway = v.duration(c.Leeway, kind, name, "leeway")
			}
			if c.KeyFile == "" {
				v.errorf(at("key_file"), field("key_file"), "must name the verification key file")
			}
			// The command line has no way to name algorithms; there the
			// key's family is pinned when the source is built.
			if len(c.Algorithms) == 0 && v.src.fromFile() {
				v.errorf(at("key_file"), field("algorithms"), `name the accepted algorithms, such as ["RS256"], ["ES256"] or ["HS256"]: pinning them stops a token from choosing how it is checked`)
			}
			switch c.SecretEncoding {
			case "", "base64url", "raw":
			default:
				v.errorf(at("secret_encoding"), field("secret_encoding"), "%q: want base64url or raw", c.SecretEncoding)
			}
			spec.jwt = o
		case "token_http":
			c := findNamed(cfg.TokenHTTP, name, func(c TokenHTTPConfig) string { return c.Name })
			allow = c.Allow
			if err := targets.CheckLookupURL(c.URL); err != nil {
				v.errorf(at("url"), field("url"), "%v", err)
			}
			spec.http = &targets.HTTPLookupOptions{
				URL:      c.URL,
				Timeout:  v.optionalPositive(c.Timeout, kind, name, "timeout"),
				CacheTTL: v.optionalTTL(c.CacheTTL, kind, name, "cache_ttl"),
			}
		case "socket_dir":
			c := findNamed(cfg.SocketDirs, name, func(c SocketDirConfig) string { return c.Name })
			if !strings.HasPrefix(c.Path, "/") {
				v.errorf(at("path"), field("path"), "%q: want an absolute directory", c.Path)
			}
			spec.sockDir = c.Path
		}
		switch {
		case len(allow) > 0:
			spec.allow = v.allowlist(allow, at("allow"), field("allow"))
		case spec.dynamic() && v.src.fromFile():
			// The websockify command line reaches whatever the source
			// names, as websockify does, and warns at start.
			v.errorf(v.src.blockAt(kind, name), field("allow"),
				"this source names targets from outside the configuration, so it needs allow = [...], the networks and ports it may reach, "+
					`such as ["10.0.0.0/8:5900-5999"]; the allowlist is checked against the address actually dialled, after DNS. `+
					`["0.0.0.0/0", "::/0"] allows everything, deliberately`)
		}
		st.sources = append(st.sources, spec)
	}
}

// findNamed returns the block config with the label name; duplicates were
// reported already, so the first one is it.
func findNamed[T any](list []T, name string, label func(T) string) *T {
	for i := range list {
		if label(list[i]) == name {
			return &list[i]
		}
	}
	return new(T)
}

func (v *validator) allowlist(entries []string, at *hcl.Range, field string) *targets.Allowlist {
	a, err := targets.ParseAllowlist(entries)
	if err != nil {
		v.errorf(at, field, "%v (entries: \"10.0.0.0/8\", \"10.0.0.5:5900-5999\", \"[fd00::/8]:22,2222\", \"unix:/run/vnc\")", err)
	}
	return a
}

// optionalPositive is positive for attributes whose "" means the
// package's default.
func (v *validator) optionalPositive(s string, path ...string) time.Duration {
	if s == "" {
		return 0
	}
	return v.positive(s, path...)
}

// optionalTTL is a cache lifetime: "" is the default, "0s" is off.
func (v *validator) optionalTTL(s string, path ...string) time.Duration {
	if s == "" {
		return 0
	}
	return offIfZero(v.duration(s, path...))
}

func splitHostPort(s string) (string, string, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || !validPort(s[i+1:]) {
		return "", "", fmt.Errorf("want host:port")
	}
	return s[:i], s[i+1:], nil
}
